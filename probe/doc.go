// Package probe actively fingerprints TLS servers.
//
// # JARM
//
// JARM is implemented bit-identically to the reference jarm.py
// (shared/spec/JARM.md is the contract; shared/testdata/jarm holds its
// vectors). The ClientHellos are hand-built bytes (BuildJARMProbes), the
// answer is read at fixed offsets (ParseJARMAnswer) and hashed
// (JARMHash). Quirks that are replicated on purpose, because public JARM
// lists are made with the reference:
//
//   - a 32-byte random session id in every probe, so the cipher offset
//     depends on the length byte the server echoes at offset 43;
//   - record version 0301 on the TLS 1.3 probes; probe 6 ("middle_out") in
//     forward cipher order; "extension order" only reverses the ALPN and
//     supported_versions lists; key_share in every probe, its GREASE share a
//     1-byte key of a group not offered; max_fragment_length offered;
//   - server_name is the target string verbatim (an IP literal by default),
//     its length fields counted in code points as Python's len() does;
//   - one read of at most 1484 bytes per probe, no record reassembly; a
//     failing shutdown(SHUT_RDWR) after the read drops the answer;
//   - the parser follows Python's clamped slices: a short header area gives
//     "cipher|version||", a truncated extension list, a zero-length or
//     non-UTF-8 ALPN give "|||"; the 0x0b, 0eac0b and absolute-offset 0ff00b
//     checks; legacy_version as the version; HRR parsed as a ServerHello;
//     ALPN = first 0010 extension minus 3 bytes;
//   - the hash: unknown ciphers code 46, version char "abcdef"[digit 4]
//     (Python's int(), Unicode digits included), no separators in the
//     SHA-256 input, 62 zeros only for ten "|||".
//
// One deliberate difference (JARM.md §1.3): the x25519 key share is a real
// public key derived from the random source instead of 32 random bytes,
// so stacks that reject a key with the top bit set answer deterministically.
// An all-zero scalar is sent as 32 zero bytes, as jarm.py would send them,
// so the zero-random golden vectors still match.
//
// # Status mapping of (*JARM).Probe
//
//   - any connect/send/recv timeout, the hard per-target deadline or ctx
//     cancellation: StatusTimeout, JARM = ZeroJARM, JARMRaw = ten "|||";
//     the remaining probes are not sent (jarm.py aborts the same way);
//   - at least one probe parsed as a ServerHello: StatusOK;
//   - otherwise, every connect failed (refused, unreachable): StatusRefused;
//   - otherwise, some answer was neither a TLS alert nor a TLS handshake
//     record: StatusNotTLS;
//   - otherwise, some answer was a TLS alert or an unparsable handshake
//     record: StatusHandshakeError;
//   - otherwise, some probe was reset: StatusReset;
//   - otherwise (the server closed without a byte): StatusHandshakeError.
//
// All of these but StatusOK carry ZeroJARM, which is a status and never a
// fingerprint (Result.HasJARM is false). When jarm.py could not hash the raw
// string (a version char it crashes on, or a hostile ALPN containing "|" or
// "," that breaks the field split into fewer than 4 fields or more than ten
// pieces) the status is StatusHandshakeError with an Error saying why and an
// empty JARM. An ALPN with "|" that jarm.py still hashes to 62 characters
// keeps jarm.py's value.
//
// A target without a valid address is StatusRefused with no connection; a
// failure to build the probes (host name over 64 KiB, random source error)
// or a recovered panic of an injected Dialer is StatusHandshakeError; both
// carry ZeroJARM. Conns counts connection attempts, failed connects
// included. Error is a short text whenever the status is not ok.
package probe
