package cli

type testCmd struct{}
type passwordCmd struct{}
type serveCmd struct{}
