// Command gen writes the ingest benchmark's logs (internal/loggen) as
// conn.log, conn.json and eve.json in a directory.
//
//	go run ./bench/gen -lines 2000000 -servers 1000000 -out DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stackprint/stackprint/internal/loggen"
)

func main() {
	lines := flag.Int("lines", 2_000_000, "connections (lines per file)")
	servers := flag.Int("servers", 1_000_000, "distinct TLS servers")
	out := flag.String("out", ".", "output directory")
	flag.Parse()
	if err := run(*lines, *servers, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(n, servers int, dir string) error {
	var fs [3]*os.File
	for i, name := range []string{"conn.log", "conn.json", "eve.json"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer f.Close()
		fs[i] = f
	}
	if err := loggen.Write(fs[0], fs[1], fs[2], n, servers); err != nil {
		return err
	}
	for _, f := range fs {
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
