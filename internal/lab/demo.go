package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/stackprint/stackprint/zeeklog"
)

// Conn is one line of a lab Zeek ssl.log: a client (orig, ip:port)
// talking to a server, with the SNI it sent ("" = none).
type Conn struct {
	UID  string
	Orig string
	Resp netip.AddrPort
	SNI  string
}

// StartDemoServers starts the demo's servers: three Go TLS stacks on
// 127.0.0.21-23 and, when openssl is installed, an s_server on .24 (its
// absence is reported on warn, not an error).
func StartDemoServers(ctx context.Context, dir string, warn io.Writer) ([]*Server, error) {
	var out []*Server
	fail := func(err error) ([]*Server, error) {
		for _, s := range out {
			s.Close()
		}
		return nil, err
	}
	ec, err := SelfSigned("ecdsa", "www.demo.test")
	if err != nil {
		return fail(err)
	}
	rsaCert, err := SelfSigned("rsa", "updates.demo.test")
	if err != nil {
		return fail(err)
	}
	apiCert, err := SelfSigned("rsa", "api.demo.test")
	if err != nil {
		return fail(err)
	}
	specs := []struct {
		name, ip string
		cfg      *tls.Config
	}{
		{"go-ecdsa-h2", "127.0.0.21", &tls.Config{Certificates: []tls.Certificate{ec}, NextProtos: []string{"h2", "http/1.1"}}},
		{"go-tls12-rsa (the C2)", "127.0.0.22", &tls.Config{Certificates: []tls.Certificate{rsaCert}, MaxVersion: tls.VersionTLS12}},
		{"go-default-rsa", "127.0.0.23", &tls.Config{Certificates: []tls.Certificate{apiCert}}},
	}
	for _, s := range specs {
		srv, err := StartGoTLS(s.name, s.ip, s.cfg)
		if err != nil {
			return fail(err)
		}
		out = append(out, srv)
	}
	if srv, err := StartOpenSSL(ctx, "openssl-s_server", "127.0.0.24", dir); err == nil {
		out = append(out, srv)
	} else {
		fmt.Fprintf(warn, "demo: no openssl s_server (%v); continuing with the Go servers\n", err)
	}
	return out, nil
}

// ZeekSSLFields and ZeekSSLTypes are the default Zeek 6–9 ssl.log header.
const ZeekSSLFields = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\tcipher\tcurve\tserver_name\tresumed\tlast_alert\tnext_protocol\testablished\tssl_history\tcert_chain_fps\tclient_cert_chain_fps\tsni_matches_cert"
const ZeekSSLTypes = "time\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\tstring\tbool\tstring\tstring\tbool\tstring\tvector[string]\tvector[string]\tbool"

// zeekSSLSchema is ZeekSSLFields and ZeekSSLTypes as a zeeklog schema.
func zeekSSLSchema() zeeklog.Schema {
	names, types := strings.Split(ZeekSSLFields, "\t"), strings.Split(ZeekSSLTypes, "\t")
	s := zeeklog.Schema{Path: "ssl", Fields: make([]zeeklog.Field, len(names))}
	for i := range names {
		s.Fields[i] = zeeklog.Field{Name: names[i], Type: types[i]}
	}
	return s
}

// WriteZeekSSL appends conns as Zeek TSV ssl.log lines, with the header
// first when header is set. It is one append per call rather than a
// zeeklog.Log, because the demo and the tests add lines to a file the
// daemon is following, between (and during) its restarts.
func WriteZeekSSL(path string, conns []Conn, header bool) error {
	schema := zeekSSLSchema()
	var b []byte
	if header {
		b = schema.AppendHeader(b, time.Now())
	}
	for _, c := range conns {
		orig := netip.MustParseAddrPort(c.Orig)
		var sni any // unset when the client sent none
		if c.SNI != "" {
			sni = c.SNI
		}
		var err error
		b, err = schema.AppendRecord(b, zeeklog.TSV, []any{time.Now(), c.UID, orig.Addr(), orig.Port(), c.Resp.Addr(), c.Resp.Port(),
			"TLSv13", "TLS_AES_128_GCM_SHA256", "x25519", sni, false, nil, nil, true, "CsiI", nil, nil, nil})
		if err != nil {
			return fmt.Errorf("write zeek log %q: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("write zeek log: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write zeek log %q: %w", path, err)
	}
	return f.Close()
}
