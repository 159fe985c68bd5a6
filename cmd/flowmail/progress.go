package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/pow"
)

// sendProgress draws the phases of building and storing a mail: a bar
// while grinding each recipient's proof of work and while storing blocks
// on a terminal, one line per finished phase otherwise (logs, scripts).
type sendProgress struct {
	w      io.Writer
	tty    bool
	names  []string // recipient display names, by index
	bar    *progressbar.ProgressBar
	phase  mail.Phase
	who    int // recipient of the current grind
	pow    pow.Progress
	start  time.Time
	stored bool // the end of storing was reported
}

func newSendProgress(w io.Writer, names []string) *sendProgress {
	f, ok := w.(*os.File)
	return &sendProgress{w: w, tty: ok && term.IsTerminal(int(f.Fd())), names: names, who: -1}
}

func (p *sendProgress) newBar(max int64, desc string, bytes bool) {
	p.finishBar()
	if !p.tty {
		return
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	p.bar = progressbar.NewOptions64(max, opts...)
}

func (p *sendProgress) finishBar() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}

// Report is the build and send progress callback.
func (p *sendProgress) Report(pr mail.Progress) {
	if pr.Phase != p.phase || (pr.Phase == mail.PhaseGrind && pr.Recipient != p.who) {
		p.phase, p.who, p.start, p.stored = pr.Phase, pr.Recipient, time.Now(), false
		switch pr.Phase {
		case mail.PhaseGrind:
			p.newBar(int64(max(pr.PoW.Expected, 1)), "proof of work for "+p.name(pr.Recipient), false)
		case mail.PhaseStore:
			p.newBar(pr.Total, "storing", true)
		}
	}
	switch pr.Phase {
	case mail.PhaseGrind:
		if pr.PoW.Attempts > 0 {
			if !p.tty && p.pow.Attempts == 0 {
				// Said once, so a long grind (or one under a grant, short)
				// shows what it costs before it ends.
				fmt.Fprintf(p.w, "proof of work for %s: about 2^%d trials expected\n", p.name(pr.Recipient), int(math.Round(math.Log2(pr.PoW.Expected))))
			}
			p.pow = pr.PoW
		}
		if p.bar != nil && pr.PoW.Attempts > 0 {
			// Grinding is a lottery: the bar shows trials against the
			// expected count and may stop short or run past it.
			_ = p.bar.Set64(min(int64(pr.PoW.Attempts), p.bar.GetMax64()-1))
		}
		// Recipient i is done when Done reaches i+1.
		if pr.Done == int64(pr.Recipient)+1 {
			p.finishBar()
			if !p.tty {
				fmt.Fprintf(p.w, "proof of work for %s: %d trials in %s (%.1fM trials/s)\n",
					p.name(pr.Recipient), p.pow.Attempts, p.pow.Elapsed.Round(time.Millisecond), p.pow.Rate/1e6)
			}
			p.pow = pow.Progress{}
		}
	case mail.PhaseStore:
		if p.bar != nil {
			_ = p.bar.Set64(pr.Done)
		}
		if pr.Done == pr.Total && pr.Total > 0 && !p.stored {
			p.finishBar()
			if !p.tty {
				fmt.Fprintf(p.w, "stored %d bytes in %s\n", pr.Total, time.Since(p.start).Round(time.Millisecond))
			}
			p.stored = true
		}
	}
}

func (p *sendProgress) name(i int) string {
	if i >= 0 && i < len(p.names) {
		return p.names[i]
	}
	return "recipient"
}

// bigFetch is the size from which a mail's download shows progress;
// smaller ones arrive before a bar could say anything.
const bigFetch = 256 << 10

// fetchProgress draws a bar while a big mail's shards arrive on a
// terminal, and a line when one has arrived otherwise.
type fetchProgress struct {
	w     io.Writer
	tty   bool
	bar   *progressbar.ProgressBar
	index block.ID
	start time.Time
}

func newFetchProgress(w io.Writer) *fetchProgress {
	f, ok := w.(*os.File)
	return &fetchProgress{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

// Report is the fetch progress callback.
func (p *fetchProgress) Report(pr delivery.FetchProgress) {
	total := pr.TotalBytes
	if total < bigFetch {
		return
	}
	if pr.Index != p.index || pr.Done == 0 {
		p.finish()
		p.index, p.start = pr.Index, time.Now()
		if p.tty {
			p.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(fmt.Sprintf("mail %d of %d", pr.Mail+1, pr.Mails)),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetWidth(30),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }))
		}
	}
	if p.bar != nil {
		_ = p.bar.Set64(pr.Bytes)
	}
	if pr.Done == pr.Needed {
		p.finish()
		if !p.tty {
			fmt.Fprintf(p.w, "mail %d of %d: %d shards, %d KiB in %s\n",
				pr.Mail+1, pr.Mails, pr.Needed, total>>10, time.Since(p.start).Round(time.Millisecond))
		}
	}
}

// finish closes a bar left open by a mail whose shards stopped arriving.
func (p *fetchProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
