//go:build !unix

package tailer

import "os"

func mapFile(*os.File) ([]byte, func()) { return nil, nil }

func dropMapped([]byte) {}
