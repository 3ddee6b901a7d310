package output

import (
	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/zeeklog"
)

// AlertMarshaler returns the renderer of alert lines in format f (the
// Kafka output writes the same JSON as the alert files).
func AlertMarshaler(f AlertFormat) (func(stackprint.Alert) ([]byte, error), error) {
	return f.marshaler()
}

// MarshalFingerprint renders one fingerprint record as a line of
// stackprint.log in JSON mode, newline included.
func MarshalFingerprint(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) ([]byte, error) {
	return fingerprintSchema().AppendRecord(nil, zeeklog.JSON, fingerprintRecord(ev, r, m))
}
