// Package fileio holds the file primitives the log writers share: replacing
// a file atomically (feeds, DB exports read by Zeek and Suricata while they
// change), fsyncing a directory after a rename, and looking at the end of
// an append-only log (a line torn by a crash, the last header line) without
// reading it whole. It is internal: these are helpers, not an API.
package fileio
