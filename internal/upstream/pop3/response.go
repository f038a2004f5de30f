package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// status is one parsed status line.
type status struct {
	ok   bool   // +OK
	cont bool   // "+ " SASL continuation (RFC 5034)
	line string // the whole line, control characters removed
	code string // RFC 2449 response code, without brackets
	text string // after the status indicator and the code
}

// readLine reads one line of at most limit bytes, CRLF (or a bare LF)
// included, and returns it without the line ending.
func readLine(br *bufio.Reader, limit int) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			return "", ErrResponseTooLong
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return string(line), nil
}

// readStatus reads and parses a status line.
func readStatus(br *bufio.Reader) (status, error) {
	line, err := readLine(br, maxResponseLine)
	if err != nil {
		return status{}, err
	}
	return parseStatus(line)
}

// parseStatus parses "+OK text", "-ERR [CODE] text" or "+ challenge".
// The indicators are matched without regard to case, as some servers send
// "+Ok".
func parseStatus(line string) (status, error) {
	s := status{line: clean(line)}
	var rest string
	switch {
	case hasPrefixFold(line, "+OK") && (len(line) == 3 || line[3] == ' '):
		s.ok, rest = true, line[3:]
	case hasPrefixFold(line, "-ERR") && (len(line) == 4 || line[4] == ' '):
		rest = line[4:]
	case line == "+" || strings.HasPrefix(line, "+ "):
		s.cont = true
		s.text = strings.TrimPrefix(strings.TrimPrefix(line, "+"), " ")
		return s, nil
	default:
		return status{}, fmt.Errorf("%w: unexpected status line", ErrMalformedResponse)
	}
	rest = strings.TrimPrefix(rest, " ")
	s.code, s.text = splitCode(rest)
	s.text = clean(s.text)
	return s, nil
}

// splitCode takes an RFC 2449 §8 response code off the front of text:
// "[" resp-level *("/" resp-level) "]", a resp-level being printable
// characters other than space, brackets and "/". Text that only looks like
// a code is left alone.
func splitCode(text string) (code, rest string) {
	if !strings.HasPrefix(text, "[") {
		return "", text
	}
	end := strings.IndexByte(text, ']')
	if end < 0 {
		return "", text
	}
	code = text[1:end]
	for _, level := range strings.Split(code, "/") {
		if level == "" {
			return "", text
		}
		for i := 0; i < len(level); i++ {
			if c := level[i]; c <= ' ' || c >= 0x7f || c == '[' {
				return "", text
			}
		}
	}
	return code, strings.TrimLeft(text[end+1:], " ")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// clean removes control characters from server text meant for humans.
func clean(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return -1
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// readBody reads a multi-line response body up to its terminating ".",
// removes the dot-stuffing (RFC 1939 §3) and returns the bytes with their
// line endings untouched. Lines may be of any length; the body may not
// exceed limit bytes.
func readBody(br *bufio.Reader, limit int) ([]byte, error) {
	var body []byte
	atLineStart := true
	for {
		chunk, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if atLineStart && len(chunk) > 0 && chunk[0] == '.' {
			if err == nil && (string(chunk) == ".\r\n" || string(chunk) == ".\n") {
				return body, nil
			}
			chunk = chunk[1:]
		}
		if len(body)+len(chunk) > limit {
			return nil, ErrResponseTooLong
		}
		body = append(body, chunk...)
		atLineStart = err == nil
	}
}

// readList reads a multi-line response of short lines (CAPA, LIST, UIDL)
// and returns its lines, dot-stuffing removed.
func readList(br *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		line, err := readLine(br, maxListLine)
		if err != nil {
			return nil, err
		}
		if line == "." {
			return lines, nil
		}
		if len(lines) == maxListEntries {
			return nil, ErrResponseTooLong
		}
		lines = append(lines, strings.TrimPrefix(line, "."))
	}
}

// errorFor builds the *Error for a -ERR status.
func errorFor(command string, s status) *Error {
	return &Error{Command: command, Line: s.line, Code: s.code, Text: s.text}
}

// isProtocolDesync reports whether err leaves the stream out of step.
func isProtocolDesync(err error) bool {
	var perr *Error
	return err != nil && !errors.As(err, &perr) && !errors.Is(err, ErrInvalidArgument)
}
