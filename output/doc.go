// Package output writes what stackprint produces for people and SIEMs:
//
//   - alerts as NDJSON (AlertWriter, MarshalAlert), one object per line
//     with schema_version and the deterministic alert_id;
//   - stackprint.log (FingerprintLog), one Zeek ASCII TSV record per probed
//     target, with the exact header Zeek writes so zeek-cut, Zeek's input
//     framework and SIEM Zeek parsers read it like any Zeek log;
//   - a short text block per alert for a terminal (FormatAlertText).
//
// # Delivery
//
// Writers buffer. An alert or record counts as written only after Flush
// returned nil: Flush writes the buffer and fsyncs the file, and the daemon
// commits a log position only after that.
//
// # Reopening stackprint.log
//
// OpenFingerprintLog appends. If the file is non-empty, does not end with a
// #close line and its last #fields line is the one this version writes, the
// header is already there and only data lines are appended (a last line cut
// short by a crash is terminated first so the next record starts on its own
// line). A file closed by #close, or one written with other columns, is
// renamed aside the way Zeek rotates (stackprint.YYYY-MM-DD-HH-MM-SS.log),
// since Zeek never appends after #close and readers stop there; a new file
// with a fresh header takes its place.
//
// # Field conventions in stackprint.log
//
// Absent optional values (no uid, no SNI, no JARM, no error, no match) are
// written as unset ("-"); an empty string that is present, such as a DB
// entry without a source, is "(empty)". ts is when the probe started, or the
// event time when no probe ran. uid is the sensor's connection id: the Zeek
// uid, or the Suricata flow_id in decimal. Escaping follows ZeekEscape.
package output
