package dashboard

import "embed"

// webFS holds the page and its assets (see web/README.md for the vendored
// chart library).
//
//go:embed web
var webFS embed.FS
