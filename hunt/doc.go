// Package hunt fingerprints lists of addresses (stackprint hunt), the
// batch use of active TLS stack fingerprinting beside the daemon's: find
// the servers of a list that look like known threats.
//
// Data flow: ReadSpecs parses each input line on its own (addresses,
// CIDRs, ADDR:PORT, host names, masscan -oL/-oJ, zmap and other CSV) into
// Specs; a reader expands them into targets (address × port × SNI),
// drops duplicates, skips what a previous run finished (State) and counts
// what the scope refuses; a dispatcher hands targets to a fixed pool of
// workers once their IP's connection budget (a token bucket per address,
// as the daemon's scheduler keeps) and the global rate allow, other
// addresses going meanwhile, so a busy address never holds a worker; each
// worker probes (probe.Engine, the daemon's engine), matches (the DB,
// exact and near) and writes one record.
//
// Exactly one record per target across interruptions: State is a
// write-ahead log. A target's "S" line is written before its first
// connection and its "D" line (with the output file's size) after its
// record, each in one write, so after a SIGKILL a resumed run knows which
// targets finished (skipped), which were under way (reported as
// interrupted, never probed again: the server already saw connections)
// and where the output's last logged record ends (anything after it is
// cut off and its target reported as interrupted).
//
// Bad input never stops a run: a line that names no target is counted and
// reported as FILE:LINE with the reason.
package hunt
