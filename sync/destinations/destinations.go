// Package destinations registers every destination type with sync/config
// for its side effect: a program that reads the sync section imports it
// once (gateway/cmd/kaiten does). A new destination is a folder under
// sync/ that registers a config.Factory in its init, plus one import line
// here.
package destinations

import (
	_ "github.com/kaiten-edge/kaiten/sync/httpsink"    // http_endpoint
	_ "github.com/kaiten-edge/kaiten/sync/kinesissink" // kinesis
	_ "github.com/kaiten-edge/kaiten/sync/localsink"   // local
	_ "github.com/kaiten-edge/kaiten/sync/pgsink"      // postgres
	_ "github.com/kaiten-edge/kaiten/sync/s3sink"      // s3
)
