// Command kaiten is the Kaiten edge gateway daemon. Components plug in from
// the wire_*.go files of this package; see gateway/app.
package main

import (
	"os"

	"github.com/kaiten-edge/kaiten/gateway/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}
