package proxy

// DrainBuffered is drainBuffered, for the external tests.
var DrainBuffered = drainBuffered
