// Package admin is the daemon's admin API: while `stackprint run` owns
// the bbolt file (bbolt locks it exclusively), `stackprint db …` sends its
// changes to the daemon instead of opening the file, and they apply at
// once; a fingerprint added this way is retro-hunted in the observations
// the daemon keeps.
//
// The API is JSON over HTTP/1.1 on a unix socket (mode 0600, owner only),
// as litestream serves its control API, so it is debuggable with
//
//	curl --unix-socket /var/lib/stackprint/admin.sock http://stackprint/v1/stats
//
// Routes (v1; request and response bodies are JSON unless said):
//
//	GET    /v1/ping                       the daemon: pid, db, socket, api
//	GET    /v1/fingerprints?kind=K        list
//	POST   /v1/fingerprints               add a db.Record; retro-hunts it
//	DELETE /v1/fingerprints/{kind}/{value} remove (404 if absent)
//	POST   /v1/import?name=&format=&partial=&source=&confidence=&category=&label=&replace=
//	                                      the file's bytes as the body; retro-hunts
//	GET    /v1/export?format=&kind=&min_confidence=&since=RFC3339&intel_source=
//	                                      the exported file as the body
//	GET    /v1/stats, GET /v1/check, POST /v1/backup {"path": ABS}
//	GET    /v1/learn/finished?role=R, POST /v1/learn/results (a db.LearnResult),
//	GET    /v1/learn/scores, POST /v1/learn/reset, POST /v1/learn/promote
//	                                      (db.PromoteOptions; retro-hunts)
//	GET    /v1/explain?q=TARGET|ALERT_ID|FINGERPRINT
//	                                      an explain.Report (404 with the reason
//	                                      for an unknown alert or a bad query)
//	GET    /v1/watch                      the watch list: {"watch": [watch.Entry]}
//	POST   /v1/watch?replace=             add {"entries": [watch.Entry]}, all or none (409 if watched)
//	DELETE /v1/watch?target=KEY           stop watching ip:port[/sni] (404 if not watched)
//	POST   /v1/watch/accept?target=KEY    the last successful probe becomes the baseline
//	POST   /v1/backfill                   create a backfill job {"run": NAME, "servers": N}: a
//	                                      BackfillJob (409 while another is waiting or running)
//	POST   /v1/backfill/{id}/servers      its upload: NDJSON, one backfill.Server a line, read
//	                                      as the daemon judges them; answered at the end with the
//	                                      job (400 naming a bad line); a client that hangs up
//	                                      cancels the job
//	GET    /v1/backfill, GET /v1/backfill/{id}   jobs and their progress
//	DELETE /v1/backfill/{id}              cancel (what finished stays finished)
//
// Errors are {"error": "…"} with 400 for a malformed request, 404 for an
// unknown route or entry, 405 for a wrong method, 411 for an import
// without a length, 413 for a body over the limit (read no further), 422 for an import whose lines were rejected
// (with the report), 503 when all connections are taken, 500 otherwise.
// Bodies are bounded (http.MaxBytesReader), connections are capped, and
// every connection has read, write and idle timeouts, so a client cannot
// make the daemon hold more than the limits. A backfill upload has no
// whole-request timeout (it lasts as long as its job) but one per line.
//
// One Client speaks it; Local runs the same operations on an open DB when
// no daemon runs. The CLI uses either through one interface of its own.
//
// The socket is created under a temporary name, chmod 0600, then renamed
// into place, so it is never reachable with looser permissions under its
// real name; it is removed when the daemon stops.
package admin
