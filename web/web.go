// Package web holds the browser client, embedded into the binary.
//
// The client is plain HTML, CSS and JavaScript modules (app.js imports the
// others) with no build step; the same directory is also served as static
// files by nginx. It connects to /ws on its own origin unless a ?ws= query
// parameter or a <meta name="livechat-ws"> tag says otherwise.
package web

import (
	"embed"
	"io/fs"
)

//go:embed index.html style.css *.js
var files embed.FS

// FS returns the client's files, rooted so that "index.html" is at the top.
// The result is read-only and safe for concurrent use.
func FS() fs.FS { return files }
