package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/stackprint/stackprint/config"
	"github.com/stackprint/stackprint/configs"
	"github.com/stackprint/stackprint/db"
)

// DemoConns are the ssl.log lines of the demo: clients on loopback
// talking to the demo servers (servers[1] is the "C2"), plus two targets
// out of the default scope.
func DemoConns(servers []*Server) []Conn {
	c2 := servers[1]
	conns := []Conn{
		{UID: "CdemoA1", Orig: "127.0.0.1:50001", Resp: servers[0].Addr, SNI: "www.demo.test"},
		{UID: "CdemoB1", Orig: "127.0.0.1:50002", Resp: c2.Addr, SNI: "updates.demo.test"},
		{UID: "CdemoC1", Orig: "127.0.0.1:50003", Resp: servers[2].Addr, SNI: "api.demo.test"},
		{UID: "CdemoO1", Orig: "127.0.0.1:50004", Resp: netip.MustParseAddrPort("169.254.169.254:443"), SNI: ""},
		{UID: "CdemoO2", Orig: "127.0.0.1:50005", Resp: netip.MustParseAddrPort("10.1.2.3:443"), SNI: "intranet.demo.test"},
		{UID: "CdemoA2", Orig: "127.0.0.2:50006", Resp: servers[0].Addr, SNI: "www.demo.test"},
		{UID: "CdemoB2", Orig: "127.0.0.2:50007", Resp: c2.Addr, SNI: "updates.demo.test"}, // a second host talks to the C2
	}
	if len(servers) > 3 {
		conns = append(conns, Conn{UID: "CdemoD1", Orig: "127.0.0.1:50008", Resp: servers[3].Addr, SNI: "legacy.demo.test"})
	}
	return conns
}

// DemoConfig is the embedded default config pointed at the demo's
// directory: its DB, its log, loopback in scope, outputs in dir.
func DemoConfig(dir, dbPath, logPath string) (*config.Config, error) {
	cfg, err := config.Parse(configs.DefaultYAML)
	if err != nil {
		return nil, fmt.Errorf("demo: embedded config: %w", err)
	}
	cfg.DB.Path = dbPath
	cfg.Inputs = []config.InputConfig{{Name: "demo-zeek-ssl", Path: logPath, Format: "zeek"}}
	cfg.Scope.Allow = []string{"127.0.0.0/8"} // the lab lives on loopback
	cfg.Outputs.Alerts = filepath.Join(dir, "alerts.ndjson")
	cfg.Outputs.Fingerprints = filepath.Join(dir, "stackprint.log")
	cfg.Scheduler.ProbesPerSecond, cfg.Scheduler.Burst = 50, 10
	cfg.Probe.IOTimeout = 2 * time.Second
	cfg.Metrics.Listen = "" // no listener: the demo must not collide with a running daemon
	cfg.Log.Level = "warn"
	return cfg, nil
}

// SeedDemoDB writes the demo's fingerprint DB at path: jarm as the C2.
func SeedDemoDB(path, jarm string) error {
	d, err := db.Open(path, db.Options{Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	err = d.Add(db.Record{Kind: "jarm", Value: jarm, Label: "demo-c2 (test C2)", Category: "c2",
		Source: "stackprint demo", Confidence: "high", Notes: "JARM of the demo's TLS 1.2-only Go server"})
	return errors.Join(err, d.Close())
}
