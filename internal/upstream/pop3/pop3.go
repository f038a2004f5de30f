// Package pop3 is a small POP3 client: the wire client package upstream
// logs in with (SASL XOAUTH2 or OAUTHBEARER), and enough to look at a
// mailbox after that, for `mailkey test` and for tests.
//
// It follows RFC 1939 (POP3), RFC 2449 (CAPA, extended response codes),
// RFC 5034 (AUTH with SASL) and RFC 2595 (STLS). Before STLS it refuses a
// server that sends anything after its +OK, since those bytes would
// otherwise be read as if they had come over TLS.
//
// A Client is not safe for concurrent use. Once the stream is out of step
// with the server (an I/O error, a malformed or over-long response) every
// later call returns the same error.
package pop3

import (
	"errors"
	"strings"
)

// Limits. Each bounds what a hostile or broken server can make us hold.
const (
	// maxCommandLine is the longest command line, CRLF included, that a
	// server must accept (RFC 2449 §4). RFC 5034 §4 applies it to AUTH: an
	// initial response that does not fit is sent after an empty challenge.
	maxCommandLine = 255
	// maxResponseLine bounds a status line or a SASL challenge line. RFC
	// 2449 §4 allows 512 octets for a status line, but SASL challenges
	// carry base64 of mechanism data and servers pad their texts; 8 KiB is
	// generous for both.
	maxResponseLine = 8 << 10
	// maxListLine bounds one line of a CAPA, LIST or UIDL listing.
	maxListLine = 8 << 10
	// maxListEntries bounds a CAPA, LIST or UIDL listing: a server that
	// never ends one cannot make us grow without end.
	maxListEntries = 1 << 20
	// maxMessageSize bounds what Retr reads into memory: above the message
	// size limit of every large provider (Microsoft 365: 150 MB).
	maxMessageSize = 256 << 20
	// maxSASLRounds bounds challenges in one AUTH exchange: the mechanisms
	// in use need at most two.
	maxSASLRounds = 16
)

var (
	// ErrResponseTooLong is returned when a response line or a message is
	// over its limit. The connection is unusable afterwards.
	ErrResponseTooLong = errors.New("pop3: response too long")
	// ErrMalformedResponse is returned when the server's answer does not
	// follow the protocol.
	ErrMalformedResponse = errors.New("pop3: malformed response")
	// ErrSTLSInjection is returned by StartTLS when the server sent bytes
	// after its +OK and before the TLS handshake. They could be a
	// man-in-the-middle's injection (CVE-2011-0411 and kin); the connection
	// is closed.
	ErrSTLSInjection = errors.New("pop3: server sent data after STLS response, before TLS (possible injection)")
	// ErrTLSActive is returned by StartTLS on a connection that already
	// runs TLS.
	ErrTLSActive = errors.New("pop3: TLS already active")
	// ErrInvalidArgument is returned, before any I/O, for a command
	// argument that would break the line framing. The argument is not
	// quoted: it may be a password.
	ErrInvalidArgument = errors.New("pop3: invalid command argument")
	// ErrClosed is returned after Quit or Close.
	ErrClosed = errors.New("pop3: client closed")
)

// Error is a -ERR answer from the server. The connection stays usable.
type Error struct {
	// Command is the command verb that failed ("AUTH", "PASS", …), or ""
	// for the greeting. Arguments are never kept: they may be secrets.
	Command string
	// Line is the server's status line, control characters removed.
	Line string
	// Code is the RFC 2449 extended response code without brackets, such
	// as "AUTH", "SYS/TEMP", "SYS/PERM", "IN-USE" or "LOGIN-DELAY"; "" if
	// none was sent.
	Code string
	// Text is the human-readable text after the code.
	Text string
	// Challenge is, for a failed AUTH, the last server challenge in
	// decoded form: for XOAUTH2 and OAUTHBEARER the JSON error object
	// (see sasl.DecodeFailure). Nil otherwise.
	Challenge []byte
}

func (e *Error) Error() string {
	if e.Command == "" {
		return "pop3: server refused the connection: " + e.Line
	}
	return "pop3: " + e.Command + " failed: " + e.Line
}

// Temporary reports whether the server says the failure is temporary
// (response code SYS/TEMP, IN-USE or LOGIN-DELAY; RFC 2449 §8, RFC 3206).
func (e *Error) Temporary() bool {
	switch strings.ToUpper(e.Code) {
	case "SYS/TEMP", "IN-USE", "LOGIN-DELAY":
		return true
	}
	return false
}
