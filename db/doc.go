// Package db is the fingerprint database: one bbolt file holding the
// operator's list of malicious TLS server fingerprints, matched against
// every probe result.
//
// This is the walking-skeleton schema (version 1). Versioned migrations,
// the admin socket and learning from block/top lists come later.
//
// # Schema (version 1)
//
// Bucket "meta":
//
//	schema_version → ASCII decimal, "1"
//
// Bucket "fingerprints":
//
//	kind + "\x00" + value → JSON-encoded Record
//
// kind is one of jarm, atsf, cert_sha256, cert_sha1; value is the
// normalised fingerprint (lowercase hex, no colons), so a match is one
// direct Get and a List of one kind is a prefix scan. Keys sort by kind,
// then value, which is the order List returns.
//
// The JSON record repeats kind and value so an exported or dumped record
// stands on its own:
//
//	{"kind":"jarm","value":"2ad2ad…","label":"cobalt-strike-default",
//	 "category":"c2","source":"salesforce/jarm","confidence":"high",
//	 "notes":"","block_count":0,"top_count":0,
//	 "first_seen":"2025-01-02T03:04:05Z","last_seen":"2025-01-02T03:04:05Z"}
//
// # Locking
//
// bbolt takes an exclusive flock on the file, so only one process can have
// it open for writing. Open waits at most Options.Timeout (default 1s) and
// then fails with an error that says the file is locked, instead of hanging
// while `stackprint run` holds it.
package db
