// Package fronttest helps the tests of packages that serve through
// internal/front.
package fronttest

import "go.uber.org/goleak"

// Leaks are goleak's options for the goroutines fasthttp leaves running by
// design: its clock, and its worker pool's cleaner for a while after a
// server stops.
var Leaks = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
}
