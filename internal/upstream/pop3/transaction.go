package pop3

import (
	"fmt"
	"strconv"
	"strings"
)

// ListEntry is one line of a LIST answer.
type ListEntry struct {
	Number int   // message number, from 1
	Size   int64 // size in octets
}

// UidlEntry is one line of a UIDL answer.
type UidlEntry struct {
	Number int    // message number, from 1
	UID    string // unique-id (RFC 1939 §7: 1 to 70 characters 0x21–0x7E)
}

// Stat sends STAT and returns the number of messages and their total size.
func (c *Client) Stat() (count int, size int64, err error) {
	s, err := c.cmd("STAT", "STAT")
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(s.text)
	if len(fields) < 2 {
		return 0, 0, fmt.Errorf("%w: STAT answer", ErrMalformedResponse)
	}
	count, err1 := strconv.Atoi(fields[0])
	size, err2 := strconv.ParseInt(fields[1], 10, 64)
	if err1 != nil || err2 != nil || count < 0 || size < 0 {
		return 0, 0, fmt.Errorf("%w: STAT answer", ErrMalformedResponse)
	}
	return count, size, nil
}

// List sends LIST and returns every message's number and size.
func (c *Client) List() ([]ListEntry, error) {
	lines, err := c.listing("LIST")
	if err != nil {
		return nil, err
	}
	entries := make([]ListEntry, 0, len(lines))
	for _, line := range lines {
		n, arg, ok := numberAndArg(line)
		size, err := strconv.ParseInt(arg, 10, 64)
		if !ok || err != nil || size < 0 {
			return nil, fmt.Errorf("%w: LIST line", ErrMalformedResponse)
		}
		entries = append(entries, ListEntry{Number: n, Size: size})
	}
	return entries, nil
}

// Uidl sends UIDL (RFC 1939 §7) and returns every message's unique-id.
func (c *Client) Uidl() ([]UidlEntry, error) {
	lines, err := c.listing("UIDL")
	if err != nil {
		return nil, err
	}
	entries := make([]UidlEntry, 0, len(lines))
	for _, line := range lines {
		n, uid, ok := numberAndArg(line)
		if !ok || uid == "" {
			return nil, fmt.Errorf("%w: UIDL line", ErrMalformedResponse)
		}
		entries = append(entries, UidlEntry{Number: n, UID: uid})
	}
	return entries, nil
}

// Retr sends RETR and returns message n as sent, CRLF line endings kept
// and dot-stuffing removed.
func (c *Client) Retr(n int) ([]byte, error) {
	if n < 1 {
		return nil, ErrInvalidArgument
	}
	if _, err := c.cmd("RETR", "RETR "+strconv.Itoa(n)); err != nil {
		return nil, err
	}
	body, err := readBody(c.br, maxMessageSize)
	if err != nil {
		return nil, c.fail(err)
	}
	return body, nil
}

func (c *Client) listing(verb string) ([]string, error) {
	if _, err := c.cmd(verb, verb); err != nil {
		return nil, err
	}
	lines, err := readList(c.br)
	if err != nil {
		return nil, c.fail(err)
	}
	return lines, nil
}

// numberAndArg splits "N ARG" (extra fields are ignored, RFC 1939 §7).
func numberAndArg(line string) (int, string, bool) {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return 0, "", false
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n < 1 {
		return 0, "", false
	}
	return n, fields[1], true
}
