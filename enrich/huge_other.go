//go:build !linux

package enrich

func hugePages([]byte) {}
