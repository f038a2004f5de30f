package proxy

// DrainBuffered is drainBuffered, for the external tests.
var DrainBuffered = drainBuffered

// SourceConns is how many connections from source (an IP address) the server's guard
// counts. A session stops counting as Active before its guard slot is given back, so a test
// that needs the slot waits for this, not for Active.
func (s *Server) SourceConns(source string) int {
	s.init()
	s.guard.mu.Lock()
	defer s.guard.mu.Unlock()
	return s.guard.conns[source]
}

// Listeners is how many listeners the server still serves: Serve drops its
// listener when it returns, after Shutdown closed it.
func (s *Server) Listeners() int {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.listeners)
}
