package store

import (
	"bytes"
	"testing"
)

// FuzzDecodeRecord: decoding arbitrary plaintext never panics, never
// quotes its input in an error, and what decodes re-encodes stably.
func FuzzDecodeRecord(f *testing.F) {
	good, _ := encodeRecord(testRecord("a", "x"))
	for _, seed := range []string{
		string(good), `{"account":"a"}`, `null`, `{}`, `[]`, `{"account":"a","expiry":"zz"}`,
		`{"account":"a","scopes":[1]}`, `{"account":"a"} trailing`, "\xff\xfe", `{"account":".x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b)
		if err != nil {
			if len(b) >= 8 && bytes.Contains([]byte(err.Error()), b) {
				t.Fatalf("error %q quotes the input", err)
			}
			return
		}
		if ValidateAccount(rec.Account) != nil {
			t.Fatalf("decoded an invalid account name %q", rec.Account)
		}
		once, err := encodeRecord(rec)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		rec2, err := decodeRecord(once)
		if err != nil {
			t.Fatalf("decode of own encoding: %v", err)
		}
		twice, _ := encodeRecord(rec2)
		if !bytes.Equal(once, twice) {
			t.Fatalf("unstable encoding:\n%s\n%s", once, twice)
		}
	})
}
