package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/output"
)

// fileSink writes fingerprint records and alerts to their files. Each
// write is flushed and synced before it returns: that is what lets the
// tailer count an event as settled.
type fileSink struct {
	mu     sync.Mutex
	fp     *output.FingerprintLog
	alerts *output.AlertWriter
	hooks  daemonHooks
}

func openSink(cfg OutputsConfig, hooks daemonHooks) (*fileSink, error) {
	for _, p := range []string{cfg.Alerts, cfg.Fingerprints} {
		if p != "-" {
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				return nil, fmt.Errorf("create output directory for %q: %w", p, err)
			}
		}
	}
	fp, err := output.OpenFingerprintLog(cfg.Fingerprints, nil)
	if err != nil {
		return nil, err
	}
	al, err := output.OpenAlertWriter(cfg.Alerts)
	if err != nil {
		fp.Close()
		return nil, err
	}
	return &fileSink{fp: fp, alerts: al, hooks: hooks}, nil
}

func (s *fileSink) Record(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first *stackprint.Match
	if len(m) > 0 {
		first = &m[0]
	}
	if err := s.fp.Write(ev, r, first); err != nil {
		return err
	}
	if err := s.fp.Flush(); err != nil {
		return err
	}
	if s.hooks.onRecord != nil {
		s.hooks.onRecord(ev, r, m)
	}
	return nil
}

func (s *fileSink) Alert(a stackprint.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.alerts.Write(a); err != nil {
		return err
	}
	if err := s.alerts.Flush(); err != nil {
		return err
	}
	if s.hooks.onAlert != nil {
		s.hooks.onAlert(a)
	}
	return nil
}

func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.alerts.Close(), s.fp.Close())
}
