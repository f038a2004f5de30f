package store

import (
	"bytes"
	"regexp"
	"testing"
)

// decodeErrors is every error decodeRecord may give. None carries input
// bytes: a field name comes from the Record type, never from the document.
var decodeErrors = regexp.MustCompile(`^record (is too large|is not valid JSON \(byte \d+\)|field "[a-z_]+" has the wrong type|is not a valid record object|has no valid account name)$`)

// marker is planted in fuzz inputs: no fixed error text contains it, so an
// error that holds it has quoted the input.
const marker = "Mk7Qz9xV"

// FuzzDecodeRecord: decoding arbitrary plaintext never panics, never
// quotes its input in an error, and what decodes re-encodes stably.
func FuzzDecodeRecord(f *testing.F) {
	good, _ := encodeRecord(testRecord("a", "x"))
	for _, seed := range []string{
		string(good), `{"account":"a"}`, `null`, `{}`, `[]`, `{"account":"a","expiry":"zz"}`,
		`{"account":"a","scopes":[1]}`, `{"account":"a"} trailing`, "\xff\xfe", `{"account":".x"}`,
	} {
		f.Add([]byte(seed), uint16(len(seed)/2))
	}
	// The marker at the start of a time value, which encoding/json would echo.
	f.Add([]byte(`{"account":"a","expiry":"zz"}`), uint16(25))
	f.Fuzz(func(t *testing.T, b []byte, at uint16) {
		// The same document with the marker planted somewhere in it
		// (inside a string value when the fuzzer gets there).
		i := int(at) % (len(b) + 1)
		planted := append(append(append([]byte{}, b[:i]...), marker...), b[i:]...)
		if _, err := decodeRecord(planted); err != nil && bytes.Contains([]byte(err.Error()), []byte(marker)) {
			t.Fatalf("error %q quotes the input", err)
		}
		rec, err := decodeRecord(b)
		if err != nil {
			if !decodeErrors.MatchString(err.Error()) {
				t.Fatalf("unexpected error text %q", err)
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
