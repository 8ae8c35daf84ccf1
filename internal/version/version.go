// Package version holds signet's version, set at link time.
package version

// Version is signet's version, set with -ldflags -X at build time.
var Version = "dev"
