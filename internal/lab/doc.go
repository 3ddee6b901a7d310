// Package lab is the loopback lab of `stackprint demo` and the end-to-end
// tests: TLS servers on 127.0.0.x (in-process crypto/tls listeners or an
// `openssl s_server` child) with throwaway certificates, and a writer of
// Zeek ssl.log lines naming them. Nothing in it touches a public address.
package lab
