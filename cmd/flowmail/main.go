// Command flowmail is the one flowmail binary: create an identity, run a
// node, send and fetch mail, and start a whole test network on one machine.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal the next one has its default effect, so a
	// shutdown that hangs can still be interrupted.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowmail:", err)
		os.Exit(1)
	}
}

// run is main without the process: tests call it with their own
// arguments, streams and context.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return newApp(stdin, stdout, stderr).RunContext(ctx, args)
}
