package db

// defaultStacks maps JARMs of stock TLS stacks to what they are. A DB
// entry equal to one of these matches every server that runs the stack
// unchanged (configs/seeds/README.md: "a JARM identifies a TLS stack plus
// configuration, not a malware family"), so imports warn about them and
// learned entries are kept at low confidence.
//
// "measured": docs/JARM.md §2, reproduced with jarm.py on this
// project's reference machine. "reported": public C2 JARM lists name the
// stack (cedowens/C2-JARM; see configs/seeds/README.md).
func defaultStacks() map[string]string {
	return map[string]string{
		"07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d": "stock OpenSSL 3.0 s_server, RSA (measured with the reference jarm.py)",
		"07d14d16d21d21d00007d14d07d21d0ae59125bcd90b8876b50928af8f6cd4": "stock OpenSSL 3.0 s_server -no_tls1_3, RSA (measured with the reference jarm.py)",
		"3fd3fd0003fd3fd00043d43d00043d3bef2bf79cd6719851e8198c1e8f9a14": "Go 1.26 crypto/tls default, RSA (measured with the reference jarm.py)",
		"3fd3fd0003fd3fd0003fd3fd3fd3fdc354372cf4e0f164e5808b722db3fafd": "Go 1.26 crypto/tls MaxVersion TLS 1.2, RSA (measured with the reference jarm.py)",
		"1dd40d40d00040d00042d43d000000ad9bf51cc3f5a1e29eecb81d0c7b06eb": "stock OpenSSL 3.0 s_server, ECDSA (measured with the reference jarm.py)",
		"40d40d40d00040d00043d43d00043d3bef2bf79cd6719851e8198c1e8f9a14": "Go 1.26 crypto/tls default, ECDSA (measured with the reference jarm.py)",
		"07d14d16d00000000042d43d000000daf5e7b936a108dd9f38b18567550faa": "stock OpenSSL 3.0 s_server with ALPN h2,http/1.1, RSA (measured with the reference jarm.py)",
		"3fd3fd00000000000043d43d00043d32c43d8acf7f98719049050401317871": "Go 1.26 crypto/tls with ALPN http/1.1, RSA (measured with the reference jarm.py)",
		"2ad2ad0002ad2ad00042d42d000000ad9bf51cc3f5a1e29eecb81d0c7b06eb": "Python 3.11 ssl default server, RSA (measured with the reference jarm.py)",
		"28d28d28d00028d00042d42d000000ad9bf51cc3f5a1e29eecb81d0c7b06eb": "Python 3.11 ssl default server, ECDSA (measured with the reference jarm.py)",
		"07d14d16d21d21d07c42d41d00041d24a458a375eef0c576d23a7bab9a9fb1": "Java 11 TLS stack (reported: cedowens/C2-JARM)",
		"07d14d16d21d21d00042d41d00041de5fb3038104f457d92ba02e9311512c2": "newer Java TLS stack (reported: montysecurity/C2-Tracker, removed for false positives)",
		"07d14d16d21d21d07c07d14d07d21d9b2f5869a6985368a9dec764186a9175": "Java 8 TLS stack without TLS 1.3 (reported: 360quake/CobaltStrike-JARM)",
		"29d21b20d29d29d21c41d21b21b41d494e0df9532e75299f15ba73156cee38": "Go 1.15 crypto/tls default (reported: cedowens/C2-JARM \"go 1.15.2\")",
		"2ad2ad0002ad2ad00041d2ad2ad41da5207249a18099be84ef3c8811adc883": "Go 1.15 era crypto/tls (reported: cedowens/C2-JARM \"go 1.15.2\")",
		"2ad2ad0002ad2ad22c42d42d000000faabb8fd156aa8b4d8a37853e1063261": "Python 3 / OpenSSL 1.1.1 default server (reported: cedowens/C2-JARM)",
		"07d14d16d21d21d07c42d43d000000f50d155305214cf247147c43c0f1a823": "OpenSSL via Ruby with TLS 1.1 enabled (reported: cedowens/C2-JARM)",
	}
}

// DefaultStack reports whether a fingerprint is that of a stock TLS stack,
// and which. Only JARMs are known so far.
func DefaultStack(kind, value string) (string, bool) {
	if kind != KindJARM {
		return "", false
	}
	s, ok := defaultStacks()[value]
	return s, ok
}
