// Package zeekread reads Zeek logs back into typed records, for tests: they
// check that what the zeeklog writer and the outputs write reads back as
// Zeek's own readers would see it. stackprint itself never reads its own
// logs, so this is not part of its API; the tailer reads the sensors' logs
// with its own zero-copy scanner over the same zeeklog.Header.
package zeekread
