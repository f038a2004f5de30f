package store

import (
	"encoding/json"
	"errors"
	"fmt"
)

const (
	// maxAccountLen bounds account names, which become file names.
	maxAccountLen = 64
	// maxRecordSize bounds a record file: a record is a few KiB of tokens,
	// so anything this large is not one of ours.
	maxRecordSize = 1 << 20
)

// ValidateAccount reports whether name can name an account: 1 to 64
// letters, digits, '.', '_', '-' or '@', not starting with a dot. Any other
// name yields an *InvalidNameError.
func ValidateAccount(name string) error {
	switch {
	case name == "":
		return &InvalidNameError{Name: name, Reason: "it is empty"}
	case len(name) > maxAccountLen:
		return &InvalidNameError{Name: name[:maxAccountLen] + "…", Reason: fmt.Sprintf("it is longer than %d characters", maxAccountLen)}
	case name[0] == '.':
		return &InvalidNameError{Name: name, Reason: "it starts with a dot"}
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '@') {
			return &InvalidNameError{Name: name, Reason: "only letters, digits, '.', '_', '-' and '@' are allowed"}
		}
	}
	return nil
}

func encodeRecord(rec *Record) ([]byte, error) {
	return json.Marshal(rec)
}

// decodeRecord parses a decrypted record. Its errors never quote the input:
// encoding/json would (a time that does not parse is echoed whole).
func decodeRecord(b []byte) (*Record, error) {
	if len(b) > maxRecordSize {
		return nil, errors.New("record is too large")
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("record is not valid JSON (byte %d)", syn.Offset)
		case errors.As(err, &typ) && typ.Field != "":
			return nil, fmt.Errorf("record field %q has the wrong type", typ.Field)
		default:
			return nil, errors.New("record is not a valid record object")
		}
	}
	if ValidateAccount(rec.Account) != nil {
		return nil, errors.New("record has no valid account name")
	}
	return &rec, nil
}
