// Package zeeklog is stackprint's one implementation of Zeek's log format
// (LogAscii), shared by every side that touches it: the tailer reads the
// sensors' ssl.log and conn.log, the outputs write stackprint.log and
// stackprint_alert.log, and the demo writes an ssl.log for the daemon to
// follow. Before it existed each of them carried its own header parsing,
// escaping or writer, and they drifted; now a change to the format (a
// marker, an escape rule, a header key) is made once.
//
// It holds:
//
//   - the header model (Header): the '#' lines of a TSV log, applied one at
//     a time so a follower can keep reading a file that is still growing,
//     with reused buffers so the tailer's hot path does not allocate;
//   - escaping (Escape, byte for byte as Zeek's ASCII writer) and
//     unescaping (Unescape, AppendUnescaped: \xHH and \\);
//   - the writer (Log): TSV with Zeek's exact header, or JSON lines as
//     Zeek's JSON writer escapes them, with Zeek's rotation.
//
// It sits below the tailer and output in the data flow and imports
// neither. What only one side needs stays there: the tailer's zero-copy
// record scanner, the outputs' record layouts. A full reader that types
// every column lives in internal/zeekread for tests: stackprint never
// needs to read its own logs back.
package zeeklog
