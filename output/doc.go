// Package output writes what stackprint produces for people, SIEMs and the
// sensors themselves:
//
//   - stackprint.log (FingerprintLog): one record per probed target;
//     stackprint_alert.log (AlertLog): one record per alert. Both are Zeek
//     logs (zeeklog.Log) written as Zeek's ASCII writer does, TSV with the
//     exact header and escaping or JSON lines, so zeek-cut, Zeek's input
//     framework and SIEM Zeek parsers read them like any Zeek log; each
//     rotates on its own (interval and/or size: #close, rename, new file);
//   - alert lines (AlertWriter) in one of three shapes: stackprint's flat
//     NDJSON (MarshalAlert), ECS (MarshalECS) or Suricata EVE alert
//     records (MarshalEVE);
//   - server feeds (ServerFeed): a Zeek Intel file and a Suricata dataset
//     of alerted servers, replaced atomically, so the sensor flags later
//     connections to them itself;
//   - a short text block per alert for a terminal (FormatAlertText).
//
// The Zeek format itself (header, escaping, the writer and its rotation) is
// package zeeklog; the tests read every log back with internal/zeekread.
//
// # Delivery
//
// Writers buffer. A record counts as written only after Flush returned
// nil: Flush writes the buffer and fsyncs the file, and the daemon commits
// a log position only after that. Feeds are synced by the time Add
// returns.
//
// # Reopening and rotating Zeek logs
//
// zeeklog.Open appends. If the file is non-empty, does not end with a
// #close line and its last #fields line is the one this version writes,
// the header is already there and only data lines are appended (a last line
// cut short by a crash is terminated first so the next record starts on
// its own line). A file closed by #close, or one written with other
// columns, is renamed aside the way Zeek rotates
// (stackprint.YYYY-MM-DD-HH-MM-SS.log, the file's #open time), since Zeek
// never appends after #close and readers stop there; a new file with a
// fresh header takes its place. After a rotation the next file is created
// with the next record, as Zeek does.
//
// # Field conventions in the Zeek logs
//
// Absent optional values (no uid, no SNI, no JARM, no error, no match) are
// unset ("-" in TSV, left out in JSON); an empty string that is present,
// such as a DB entry without a source or an HTTP answer without a Server
// header, is "(empty)" in TSV and "" in JSON. In stackprint.log ts is when
// the probe started, or the event time when no probe ran; in
// stackprint_alert.log ts is when the alert was made. uid is the sensor's
// connection id: the Zeek uid, or the Suricata flow_id in decimal. TSV
// escaping follows zeeklog.Escape; JSON strings follow Zeek's HEX escape
// policy (control bytes other than TAB, LF, CR, BS, FF and invalid UTF-8
// become the text \xHH, which does not read back unambiguously, as in
// Zeek).
package output
