// Package tailer reads Zeek and Suricata logs and turns the records that
// name a TLS server into stackprint.Events: it holds the log parsers and a
// file follower that never loses a line across rotation, truncation and
// restarts.
//
// # Parsers
//
// ZeekParser reads Zeek ssl.log and conn.log, TSV or JSON (detected per
// file from the first line: '#' is a TSV header, '{' a JSON object, a
// tab-separated line of column names with ts and id.resp_h the single
// header of tsv=T mode; a '{' line after a TSV header whose first column is
// ts switches to JSON).
//
//   - TSV: separators, the empty and unset markers and the columns come from
//     each header block (#separator, #set_separator, #empty_field,
//     #unset_field, #path, #fields), never from fixed positions; a new block
//     in the same stream replaces the old one. Values are compared with the
//     unset/empty markers before they are unescaped (\xHH, \\); sets and
//     vectors are split on the set separator before their elements are
//     unescaped. A data line never starts with '#' (Zeek writes \x23), so
//     every '#' line is meta. Both scope separators are accepted (id.orig_h,
//     id_orig_h), and Input.FieldNames maps renamed fields
//     (Log::default_field_name_map). Meta prefixes other than '#' are not
//     supported.
//   - JSON: flat field names (dotted or underscored; a nested "id" object is
//     not Zeek's layout and leaves the fields missing); ts as epoch seconds
//     (float or integer), integer milliseconds (by magnitude, >= 1e11), or an
//     ISO8601 string, all exact to the microsecond; unset fields omitted or
//     null; _path of the json-streaming package routes shared streams.
//     Strings are decoded as JSON text: the HEX escape policy's "\\x07" stays
//     the four characters \x07 (it cannot be told from a literal \x07), and
//     a PUA escape (\udb80\udc07) stays U+F0007, never mapped back to a byte.
//   - The log is known from #path/_path ("ssl", "conn", also with the
//     json_streaming_ prefix). Without one it is inferred from the fields:
//     ssl-only fields (server_name, ssl_history, cipher, resumed,
//     established, cert_chain_fps, …) make an ssl record, conn_state (or
//     service with uid) a conn record.
//   - Every ssl record is an event (Kind "zeek_ssl", SNI from server_name).
//     A conn record is an event (Kind "zeek_conn") only when service lists
//     ssl and not -ssl, proto is tcp and conn_state is neither S0 nor REJ;
//     otherwise it is skipped, as are all other logs (notice, x509, http, …).
//     Its service list without ssl (e.g. "smtp" from "smtp,ssl": TLS
//     started with STARTTLS) is Event.Service.
//     No ordering of ts is assumed (conn.log is written when connections
//     end).
//
// An SNI, from either parser, is kept only when it is a host name
// (ValidSNI: RFC 6066, at most 253 bytes); otherwise the event is delivered
// without it and counted in Stats.InvalidSNI.
//
// EveParser reads Suricata eve.json: event_type tls (Kind "eve_tls", SNI
// from tls.sni), flow with app_proto tls ("eve_flow") and alert with a tls
// block or app_proto tls ("eve_alert"); TCP only. For an alert the server is
// flow.dest_ip/dest_port when the flow block names it, else src when
// direction is to_client, else src when only src has a well-known server
// port (the eve-6.0 case), else dest. Timestamps accept offsets with and
// without a colon ("ts-error" is a malformed line, counted); Event.TS is
// flow.start when present (the connection start), else timestamp. flow_id
// is parsed as uint64; expanded IPv6 is canonicalised. An app_proto other
// than tls or failed (smtp on a STARTTLS session) is Event.Service. ja3/ja3s (objects or
// strings) and ja4 are skipped without decoding. Other event types are
// skipped after reading event_type. TLSVersion normalises the version
// strings of both sensors ("TLSv1" is tls/1.0); events do not carry them.
//
// Parsers only decode what an event needs: lines of other logs are counted
// as skipped without validating their values. Malformed ssl/conn/eve TLS
// lines yield an error, a *FieldError when a field is to blame; the tailer
// logs it with the file and line number. Event.TS is always in UTC.
//
// # Follower
//
// A Tailer follows one Input.Path, or every file matching a glob in its
// file name (time-named eve-%Y-%m-%d-%H:%M.json, threaded eve.*.json): each
// matching file is followed on its own, a file already read under another
// name is not read again (json-streaming's numeric shift renames within
// the glob), and a quiet file is closed while a newer one is written and
// reopened at its offset when it grows.
//
// It watches the parent directory (resolved through symlinks again at
// every look: zeekctl's logs/current) with fsnotify, through one
// DirWatcher per process when Options.Watcher is shared, and rescans every
// PollInterval anyway. Without fsnotify, or when a directory cannot be
// watched (inotify limits), it polls alone and says so; an event queue
// overflow triggers a full rescan. Events only wake the follower, which
// then stats and reads: coalesced or missing events lose nothing. Lines are
// read with a bufio.Reader; an incomplete last line waits for its newline;
// lines over MaxLineBytes are dropped while streaming and counted; NUL runs
// where a line starts are skipped and counted (copytruncate with a writer
// that keeps its offset).
//
// File identity is (device, inode) plus a content fingerprint: the SHA-256
// of the first FPLen bytes, the header block and first data line of a Zeek
// TSV file (#path and #open make it unique per file) or the first line of a
// JSON file, capped at 4 KiB; FPLen grows until that line is complete.
//
//   - Rotation (rename+create, lazy creation, zeekctl's spool move, a
//     retargeted symlink, an atomic replace): the path names another file or
//     none. The old file stays open and is read until it ends with #close or
//     has been quiet for RotateWait (Suricata may write to eve.json.1 until
//     it handles SIGHUP); its unfinished last line is then processed on its
//     own, never glued to the next file, and it is closed (a deleted file's
//     space is freed). Only then is the next file read, so the events of one
//     path are in file order.
//   - Catch-up: before the path's new file is read, rotated siblings
//     (conn.<digits…>.log, eve.json.1, with or without .gz; never .shadow.*)
//     and Input.Archives not read yet and not older than the finished file
//     are read in modification-time order: the path rotated twice between
//     two looks (the middle generation is only reachable under its rotated
//     name, or compressed). Generations present when a path is first opened
//     count as read. A file with the same complete fingerprint as one read
//     before (a copy, its archive) is never read twice.
//   - Truncation in place: fewer bytes than were read, or other bytes where
//     the fingerprint was taken (truncated and regrown past the old offset
//     before we looked, Zeek's O_TRUNC restart with a new #open). The file
//     is read again from 0 with a reset parser; when a rotated sibling holds
//     a copy of the old content (copytruncate), its rest is read first from
//     where we were, so that only lines written between the copy and the
//     truncation can be lost.
//   - A file that does not exist yet is waited for. FromEnd starts at the
//     end of a file that exists at start, after reading its Zeek header; it
//     is ignored when Resume is given. A file seen before in this run (same
//     complete fingerprint) is continued where it was left: a directory that
//     disappears and comes back, or a remount, causes no re-read.
//   - A gzip file at the path (Zeek's CompressLogsInFlight) is refused with
//     an error in the log: it cannot be read while it is written. ReadFile
//     reads .gz archives.
//
// # Positions, resume and the delivery contract
//
// Every event carries File (the followed path: the configured path, or the
// matching file of a glob, also for lines of a rotated or archived
// generation of it), Offset (just past the event's line in the file it came
// from, counted in decompressed bytes for an archive) and Ident (that
// file's device, inode, fingerprint and archive flag). PositionOf(ev)
// turns them into a Position: the point just past the last complete line
// handed to the handler. Handler calls and Options.Progress calls happen in
// file order on Run's goroutine, and the handler may block (backpressure: no
// further line is read meanwhile); a handler error stops Run, so no later
// position is ever produced.
//
// To resume after a restart the caller passes the positions it committed
// (only after everything before them is settled) in Options.Resume, at
// most one per Position.Path. For each followed path the tailer takes the
// position stored under it (else one whose fingerprint is the file's at the
// path now, else, for a single path, the only one) and validates it:
//
//   - the file at the path has the position's fingerprint over FPLen bytes
//     and is at least Offset long: reading resumes at Offset (Zeek header
//     lines before it are read first, so that the schema is known; Offset
//     must be just past a newline);
//   - else a rotated sibling or archive (Input.Archives) with that
//     fingerprint is searched for: its rest is read from Offset, then every
//     newer generation, then the path from 0 (rotated while down, once or
//     several times; only generations within MaxCatchUpAge);
//   - else (truncated and regrown, inode reused, archived out of reach, or a
//     corrupt position) the path is read from 0, with a warning saying why,
//     counted in Stats.ResumeFallbacks.
//
// Device and inode are informative: the fingerprint decides, so a remount
// or a copied file resumes and a reused inode does not. Progress reports
// positions after lines that were not events (a conn.log of mostly non-TLS
// lines), whenever a file has been read to its end and when it is finished:
// committing them is safe once every event handed before is settled.
// Delivery is at-least-once: lines after the committed position are read
// again after a crash and produce the same events (same File, Offset,
// Ident, hence the same alert_id).
//
// # Cases of docs/TAILER-CASES.md
//
// Every case id has a test whose name starts with it (TestP01_…, TestR11_…,
// TestC05_C06_…), in cases_parse_test.go, cases_follow_test.go and
// follow_test.go. Those with a part outside this package:
//
//   - C2 (kill -9 between processing and commit) and C3 (commit only after
//     processing) are about when the daemon commits: tested in
//     cmd/stackprint crash test. Here TestC02_C03_ReplayFromOlderPosition
//     shows that resuming from an older committed position replays exactly
//     the lines after it, as the same events.
//   - C4 (corrupt checkpoint store: empty, NUL-filled, bad bbolt page) is the
//     daemon's store (tested in cmd/stackprint crash test and db); here
//     TestC04_CorruptCheckpoint feeds positions that are garbage, past the
//     end, mid-line or inconsistent: the file is read from 0 with a warning.
//   - C11 (checkpoint store bounded) is the daemon's store; the tailer's own
//     memory of files read is bounded (TestC11_StateBounded).
//   - F11 (our output disk full) is the daemon's: the tailer side is
//     backpressure (a blocked handler stops reading) and a handler error
//     stopping Run before any later position (TestF11_Backpressure).
//   - R6 copytruncate keeps a loss window: lines appended between logrotate's
//     copy and its truncation are in neither file when we read. Everything
//     else (what we had not read yet before the copy) is read from the copy.
package tailer
