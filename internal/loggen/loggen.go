// Package loggen writes the ingest benchmark's logs: the same connections
// as a Zeek conn.log (TSV), a Zeek conn.log in JSON, and a Suricata
// eve.json. The output is deterministic (a fixed-seed generator, fixed
// timestamps), shared by bench/gen and the tailer's ingest benchmarks.
//
// Seven connections in ten are TLS (service ssl, state SF; eve: a tls
// event) and name servers in turn, so that servers distinct servers are
// seen when there are at least that many TLS connections; the rest are
// HTTP, DNS over UDP and unanswered TLS attempts (S0; eve: a flow event
// with app_proto failed). Servers are public unicast addresses in
// 11.0.0.0/8 (in scope), port 443 or 8443.
package loggen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

type conn struct {
	ts                   time.Time
	uid                  string
	orig, resp           [4]byte
	origPort, respPort   int
	kind                 byte // 's' TLS, 'h' HTTP, 'd' DNS, '0' TLS without answer
	sni                  string
	flowID               uint64
	dur                  float64
	origBytes, respBytes int
}

// Write writes n connections to servers distinct TLS servers to tsv (a
// Zeek conn.log), json (the same as Zeek JSON) and eve (Suricata eve.json).
// Any of the writers may be nil.
func Write(tsv, json, eve io.Writer, n, servers int) error {
	if n < 1 || servers < 1 {
		return fmt.Errorf("loggen: lines and servers must be positive")
	}
	ws := [3]*bufio.Writer{}
	for i, w := range [3]io.Writer{tsv, json, eve} {
		if w == nil {
			w = io.Discard
		}
		ws[i] = bufio.NewWriterSize(w, 1<<20)
	}
	ws[0].WriteString("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2024-04-12-19-29-12\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto\n" +
		"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tcount\n")
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2024, 4, 12, 19, 29, 12, 0, time.UTC)
	tlsN := 0
	var buf []byte
	for i := 0; i < n; i++ {
		c := conn{
			ts:       base.Add(time.Duration(i)*time.Millisecond + time.Duration(rng.IntN(1000))*time.Microsecond),
			uid:      uid(rng),
			orig:     [4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))},
			origPort: 1024 + rng.IntN(64000),
			flowID:   rng.Uint64() >> 1,
			dur:      float64(rng.IntN(5_000_000)) / 1e6,
		}
		c.origBytes, c.respBytes = 100+rng.IntN(5000), 200+rng.IntN(50000)
		switch r := i % 10; {
		case r < 7:
			c.kind = 's'
			k := tlsN % servers
			tlsN++
			c.resp = [4]byte{11, byte(k >> 16), byte(k >> 8), byte(k)}
			c.respPort = 443
			if k%16 == 0 {
				c.respPort = 8443
			}
			c.sni = "h" + strconv.Itoa(k) + ".example.com"
		case r == 7:
			c.kind, c.respPort = 'h', 80
			c.resp = [4]byte{11, 200, byte(rng.IntN(256)), byte(rng.IntN(256))}
		case r == 8:
			c.kind, c.respPort = 'd', 53
			c.resp = [4]byte{11, 201, 0, byte(rng.IntN(8))}
		default:
			c.kind, c.respPort = '0', 443
			c.resp = [4]byte{11, 202, byte(rng.IntN(256)), byte(rng.IntN(256))}
		}
		buf = zeekTSV(buf[:0], &c)
		ws[0].Write(buf)
		buf = zeekJSON(buf[:0], &c)
		ws[1].Write(buf)
		buf = eveLine(buf[:0], &c)
		ws[2].Write(buf)
	}
	ws[0].WriteString("#close\t2024-04-12-20-29-12\n")
	for i := range ws {
		if err := ws[i].Flush(); err != nil {
			return fmt.Errorf("loggen: %w", err)
		}
	}
	return nil
}

const uidChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func uid(rng *rand.Rand) string {
	b := make([]byte, 18)
	b[0] = 'C'
	for i := 1; i < len(b); i++ {
		b[i] = uidChars[rng.IntN(len(uidChars))]
	}
	return string(b)
}

func ip(b []byte, a [4]byte) []byte {
	for i, x := range a {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(x), 10)
	}
	return b
}

func epoch(b []byte, t time.Time) []byte {
	b = strconv.AppendInt(b, t.Unix(), 10)
	b = append(b, '.')
	us := t.Nanosecond() / 1000
	s := strconv.Itoa(us)
	for i := len(s); i < 6; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

func (c *conn) service() (proto, service, state, history string, ipProto int) {
	switch c.kind {
	case 's':
		return "tcp", "ssl", "SF", "ShADadFf", 6
	case 'h':
		return "tcp", "http", "SF", "ShADadfF", 6
	case 'd':
		return "udp", "dns", "SF", "Dd", 17
	}
	return "tcp", "-", "S0", "S", 6
}

func zeekTSV(b []byte, c *conn) []byte {
	proto, svc, state, hist, ipp := c.service()
	b = epoch(b, c.ts)
	b = append(b, '\t')
	b = append(b, c.uid...)
	b = append(b, '\t')
	b = ip(b, c.orig)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(c.origPort), 10)
	b = append(b, '\t')
	b = ip(b, c.resp)
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(c.respPort), 10)
	b = append(b, '\t')
	b = append(b, proto...)
	b = append(b, '\t')
	b = append(b, svc...)
	b = append(b, '\t')
	b = strconv.AppendFloat(b, c.dur, 'f', 6, 64)
	b = fmt.Appendf(b, "\t%d\t%d\t%s\tT\tF\t0\t%s\t%d\t%d\t%d\t%d\t-\t%d\n", c.origBytes, c.respBytes, state, hist,
		c.origBytes/500+3, c.origBytes+200, c.respBytes/1000+3, c.respBytes+300, ipp)
	return b
}

func zeekJSON(b []byte, c *conn) []byte {
	proto, svc, state, hist, ipp := c.service()
	b = append(b, `{"ts":`...)
	b = epoch(b, c.ts)
	b = append(b, `,"uid":"`...)
	b = append(b, c.uid...)
	b = append(b, `","id.orig_h":"`...)
	b = ip(b, c.orig)
	b = fmt.Appendf(b, `","id.orig_p":%d,"id.resp_h":"`, c.origPort)
	b = ip(b, c.resp)
	b = fmt.Appendf(b, `","id.resp_p":%d,"proto":"%s",`, c.respPort, proto)
	if svc != "-" {
		b = fmt.Appendf(b, `"service":"%s",`, svc)
	}
	b = fmt.Appendf(b, `"duration":%s,"orig_bytes":%d,"resp_bytes":%d,"conn_state":"%s","local_orig":true,"local_resp":false,"missed_bytes":0,"history":"%s","orig_pkts":%d,"orig_ip_bytes":%d,"resp_pkts":%d,"resp_ip_bytes":%d,"ip_proto":%d}`+"\n",
		strconv.FormatFloat(c.dur, 'f', -1, 64), c.origBytes, c.respBytes, state, hist,
		c.origBytes/500+3, c.origBytes+200, c.respBytes/1000+3, c.respBytes+300, ipp)
	return b
}

func eveLine(b []byte, c *conn) []byte {
	ts := c.ts.In(time.FixedZone("", -4*3600)).Format("2006-01-02T15:04:05.000000-0700")
	common := func(b []byte, event, proto string) []byte {
		b = fmt.Appendf(b, `{"timestamp":"%s","flow_id":%d,"in_iface":"eth0","event_type":"%s","src_ip":"`, ts, c.flowID, event)
		b = ip(b, c.orig)
		b = fmt.Appendf(b, `","src_port":%d,"dest_ip":"`, c.origPort)
		b = ip(b, c.resp)
		return fmt.Appendf(b, `","dest_port":%d,"proto":"%s"`, c.respPort, proto)
	}
	switch c.kind {
	case 's':
		b = common(b, "tls", "TCP")
		b = fmt.Appendf(b, `,"tls":{"subject":"CN=%s","issuerdn":"C=US, O=Let's Encrypt, CN=R3","serial":"04:A1:3C:9E:7F:22","fingerprint":"6a:ff:ac:13:9c:42:0e:5f:77:aa:01:bc:de:23:45:67:89:ab:cd:ef","sni":"%s","version":"TLS 1.2","notbefore":"2024-01-01T00:00:00","notafter":"2024-12-31T23:59:59","ja3":{"hash":"e7d705a3286e19ea42f587b344ee6865","string":"771,4865-4866-4867,0-23-65281,29-23-24,0"},"ja3s":{"hash":"f4febc55ea12b31ae17cfb7e614afda8","string":"771,4865,51-43"}}}`+"\n", c.sni, c.sni)
	case 'h':
		b = common(b, "http", "TCP")
		b = append(b, `,"tx_id":0,"http":{"hostname":"www.example.org","url":"/index.html","http_user_agent":"curl/8.5.0","http_content_type":"text/html","http_method":"GET","protocol":"HTTP/1.1","status":200,"length":1256}}`+"\n"...)
	case 'd':
		b = common(b, "dns", "UDP")
		b = append(b, `,"dns":{"type":"query","id":4242,"rrname":"www.example.org","rrtype":"A","tx_id":0,"opcode":0}}`+"\n"...)
	default:
		b = common(b, "flow", "TCP")
		b = fmt.Appendf(b, `,"app_proto":"failed","flow":{"pkts_toserver":1,"pkts_toclient":0,"bytes_toserver":74,"bytes_toclient":0,"start":"%s","end":"%s","age":0,"state":"new","reason":"timeout","alerted":false}}`+"\n", ts, ts)
	}
	return b
}
