// Command tracetree prints a trace from Jaeger's query API as an indented tree
// of spans, each with the node that recorded it: a quick look at one proposal's
// path across the servers without a browser.
//
//	go run ./tracing/cmd/tracetree -service banking-1 -operation 'banking.command transfer'
//	go run ./tracing/cmd/tracetree -trace 4bf92f3577b34da6a3ce929d0e0e4736
//
// Without -trace it prints the newest trace of -service that holds a span named
// -operation (any span when -operation is empty).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/flotilla-raft/flotilla/tracing/jaegertest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tracetree", flag.ContinueOnError)
	fs.SetOutput(stderr)
	query := fs.String("jaeger", "http://localhost:16686", "Jaeger's query API (HTTP) base URL")
	service := fs.String("service", "", "service whose newest trace to print, e.g. banking-1")
	operation := fs.String("operation", "", "with -service: only traces holding a span of this name")
	id := fs.String("trace", "", "the trace id to print (instead of -service)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if (*id == "") == (*service == "") {
		fmt.Fprintln(stderr, "tracetree: give -trace ID or -service NAME")
		fs.Usage()
		return 2
	}
	j := jaegertest.Connect(*query)
	var tr jaegertest.Trace
	var err error
	if *id != "" {
		tr, err = j.Trace(*id)
	} else {
		tr, err = newest(j, *service, *operation)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tracetree: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "trace %s (%d spans)\n%s", tr.TraceID, len(tr.Spans), tr.Tree())
	return 0
}

// newest returns the trace of service with the latest start that holds a span
// named operation.
func newest(j *jaegertest.Jaeger, service, operation string) (jaegertest.Trace, error) {
	traces, err := j.Traces(service)
	if err != nil {
		return jaegertest.Trace{}, err
	}
	var best jaegertest.Trace
	var bestStart int64 = -1
	for _, tr := range traces {
		if _, ok := tr.Span(operation); operation != "" && !ok {
			continue
		}
		start := int64(-1)
		for _, s := range tr.Spans {
			if start < 0 || s.StartTime < start {
				start = s.StartTime
			}
		}
		if start > bestStart {
			best, bestStart = tr, start
		}
	}
	if bestStart < 0 {
		return jaegertest.Trace{}, errors.New("no trace of service " + service + " with a span " + fmt.Sprintf("%q", operation) + " in the last hour")
	}
	return best, nil
}
