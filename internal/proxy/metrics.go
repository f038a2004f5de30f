package proxy

import "sync/atomic"

// Metrics counts what a Server does. All fields are safe for concurrent use;
// several servers may share one Metrics.
type Metrics struct {
	Accepted       atomic.Int64 // connections accepted
	Active         atomic.Int64 // sessions running now (gauge)
	Spliced        atomic.Int64 // sessions relaying bytes now (gauge)
	RejectedBusy   atomic.Int64 // connections refused by the per-source cap
	AuthSucceeded  atomic.Int64 // local logins accepted
	AuthFailed     atomic.Int64 // local logins refused (bad password, unknown user)
	RateLimited    atomic.Int64 // logins refused by the failed-login limit
	UpstreamFailed atomic.Int64 // Dialer errors
	BadCommands    atomic.Int64 // refused pre-login commands
	Injections     atomic.Int64 // STARTTLS command injections refused
	TLSFailures    atomic.Int64 // failed TLS handshakes with clients
	Timeouts       atomic.Int64 // sessions ended by a timeout
	BytesUpstream  atomic.Int64 // bytes relayed from clients to upstreams
	BytesClient    atomic.Int64 // bytes relayed from upstreams to clients
}
