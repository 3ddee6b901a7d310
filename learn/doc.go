// Package learn runs `stackprint db learn`: it probes the servers of a
// block list and a top list (db.ParseTargetList reads them) with the
// daemon's probe engine, scope and rate, in parallel, and records for each
// entry which fingerprints it carried, so the DB can score every
// fingerprint B/(B+T) (docs/ATSF.md §3). Progress is kept per list entry,
// so an interrupted run resumes where it stopped.
//
// It is a package of its own, not part of the daemon's pipeline: a learn
// run probes lists, not events, and must not disturb the DB's dedup or
// checkpoints. The CLI keeps flags, printing and the calls.
package learn
