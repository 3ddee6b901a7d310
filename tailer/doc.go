// Package tailer reads Zeek and Suricata logs and turns the records that
// name a TLS server into stackprint.Events: it holds the log parsers and a
// file follower.
//
// # Parsers
//
// ZeekParser reads Zeek ssl.log and conn.log, TSV or JSON (detected per
// file from the first line: '#' is a TSV header, '{' a JSON object; a '{'
// line after a TSV header whose first column is ts switches to JSON).
//
//   - TSV: separators, the empty and unset markers and the columns come from
//     each header block (#separator, #set_separator, #empty_field,
//     #unset_field, #path, #fields), never from fixed positions; a new block
//     in the same stream replaces the old one. Values are compared with the
//     unset/empty markers before they are unescaped (\xHH, \\). Both scope
//     separators are accepted (id.orig_h, id_orig_h).
//   - JSON: flat field names (dotted or underscored); ts as epoch seconds
//     (float or integer), integer milliseconds (by magnitude, >= 1e11), or an
//     ISO8601 string; unset fields omitted or null; _path of the
//     json-streaming package routes shared streams.
//   - The log is known from #path/_path ("ssl", "conn", also with the
//     json_streaming_ prefix). Without one it is inferred from the fields:
//     ssl-only fields (server_name, ssl_history, cipher, resumed,
//     established, cert_chain_fps, …) make an ssl record, conn_state (or
//     service with uid) a conn record.
//   - Every ssl record is an event (Kind "zeek_ssl", SNI from server_name).
//     A conn record is an event (Kind "zeek_conn") only when service lists
//     ssl and not -ssl, proto is tcp and conn_state is neither S0 nor REJ;
//     otherwise it is skipped, as are all other logs (notice, x509, http, …).
//
// EveParser reads Suricata eve.json: event_type tls (Kind "eve_tls", SNI
// from tls.sni), flow with app_proto tls ("eve_flow") and alert with a tls
// block or app_proto tls ("eve_alert"); TCP only. For an alert the server is
// flow.dest_ip/dest_port when the flow block names it, else src when
// direction is to_client, else src when only src has a well-known server
// port (the eve-6.0 case), else dest. Timestamps accept offsets with and
// without a colon; Event.TS is flow.start when present (the connection
// start), else timestamp. flow_id is parsed as uint64; expanded IPv6 is
// canonicalised. Other event types are skipped after reading event_type.
//
// Parsers only decode what an event needs: lines of other logs are counted
// as skipped without validating their values. Malformed ssl/conn/eve TLS
// lines yield an error, a *FieldError when a field is to blame.
// Event.TS is always in UTC.
//
// # Follower
//
// A Tailer follows one path. It watches the parent directory with fsnotify
// (falling back to polling alone when fsnotify cannot start or the
// directory cannot be watched) and rescans every PollInterval anyway. Lines
// are read with a bufio.Reader; an incomplete last line waits for its
// newline; lines over MaxLineBytes are dropped while streaming and counted.
//
//   - Rotation (rename + create, as zeekctl does): detected by stat of the
//     path (another file, or none). The old file stays open; while the path
//     is missing (Zeek creates the new file lazily) it is still followed.
//     When a new file appears the old one is drained to EOF, its unfinished
//     last line (if any) processed on its own, and the new file read from
//     offset 0 with a reset parser.
//   - Truncation in place (size < bytes read): restart at offset 0 with a
//     reset parser; an unfinished line of the old content is dropped and
//     logged.
//   - A file that does not exist yet is waited for. FromEnd starts at the
//     end of a file that exists at start, after reading its Zeek header.
//
// Every event carries File (the configured path, also for the lines drained
// from a rotated file) and Offset (the byte offset just past its line in the
// file it came from, in decompressed bytes for ReadFile of .gz), so that a
// checkpoint can resume after the last settled event.
//
// # Deferred to the checkpoint issue
//
// Offset persistence and resume, file identity by (dev, inode) plus content
// fingerprint (#path + #open, or a hash of the first JSON line) carried on
// events, detection of a truncation that regrows past the old offset before
// a poll, catch-up from rotated and archived (.gz) generations after
// downtime or when the path rotates twice between two looks (the middle
// generation is only reachable under its rotated name), rotate_wait
// (a quiet period before closing the old file once the new one exists, and
// releasing a deleted file's fd when no new file ever comes), #close as an
// end-of-file marker, tsv=T header-only mode and non-'#' meta prefixes,
// leading NUL runs after copytruncate, symlink re-resolution
// (logs/current), one shared fsnotify watcher for many inputs, and the
// Zeek field_name_map option.
package tailer
