package gateway

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// Resolver is every DNS lookup the gateway makes (SPF, DKIM and DMARC
// records, MX hosts). *net.Resolver is one; set its Dial to ask a given
// server.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// maxDKIMSignatures bounds the signatures checked per message: each costs
// a DNS lookup and a public-key operation.
const maxDKIMSignatures = 5

// verdict is what the checks of docs/PROTOCOL.md 20.3 found.
type verdict struct {
	SPF       spf.Result
	DKIM      []dkimResult
	DMARC     authres.ResultValue // pass, fail, none, temperror, permerror
	Policy    dmarc.Policy        // the policy that applies to From's domain, when DMARC is fail
	FromHost  string
	MailFrom  string // as given, or postmaster@HELO for the null sender
	Helo      string
	dmarcNote string
}

type dkimResult struct {
	Domain string
	Value  authres.ResultValue
	Reason string
}

// reject says whether the DMARC policy asks to refuse the mail.
func (v *verdict) reject() bool {
	return v.DMARC == authres.ResultFail && v.Policy == dmarc.PolicyReject
}

// header is the Authentication-Results field value (RFC 8601) the
// recipient sees.
func (v *verdict) header(authservID string) string {
	res := []authres.Result{&authres.SPFResult{Value: authres.ResultValue(v.SPF), From: v.MailFrom, Helo: v.Helo}}
	if len(v.DKIM) == 0 {
		res = append(res, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, d := range v.DKIM {
		res = append(res, &authres.DKIMResult{Value: d.Value, Domain: d.Domain, Reason: d.Reason})
	}
	res = append(res, &authres.DMARCResult{Value: v.DMARC, From: v.FromHost, Reason: v.dmarcNote})
	return authres.Format(authservID, res)
}

// check runs SPF for the client, DKIM over msg and DMARC for fromHost
// (the From header's domain, lower case).
func check(ctx context.Context, r Resolver, ip net.IP, helo, mailFrom, fromHost string, msg []byte) *verdict {
	v := &verdict{FromHost: fromHost, Helo: helo, MailFrom: mailFrom}
	if v.MailFrom == "" {
		v.MailFrom = "postmaster@" + helo
	}
	res, _ := spf.CheckHostWithSender(ip, helo, v.MailFrom, spf.WithResolver(r), spf.WithContext(ctx))
	v.SPF = res

	lookup := func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: maxDKIMSignatures})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		v.DKIM = append(v.DKIM, dkimResult{Value: authres.ResultPermError, Reason: oneLine(err)})
	}
	for _, x := range verifs {
		d := dkimResult{Domain: strings.ToLower(x.Domain), Value: authres.ResultPass}
		switch {
		case x.Err == nil:
		case dkim.IsTempFail(x.Err):
			d.Value, d.Reason = authres.ResultTempError, oneLine(x.Err)
		case dkim.IsPermFail(x.Err):
			d.Value, d.Reason = authres.ResultPermError, oneLine(x.Err)
		default:
			d.Value, d.Reason = authres.ResultFail, oneLine(x.Err)
		}
		v.DKIM = append(v.DKIM, d)
	}
	v.dmarc(ctx, lookup)
	return v
}

// dmarc evaluates RFC 7489 for the From domain: the policy record at the
// domain or its organizational domain, and whether an SPF pass or a
// DKIM pass is aligned with it.
func (v *verdict) dmarc(ctx context.Context, lookup func(string) ([]string, error)) {
	org := orgDomain(v.FromHost)
	rec, err := dmarc.LookupWithOptions(v.FromHost, &dmarc.LookupOptions{LookupTXT: lookup})
	sub := false
	if errors.Is(err, dmarc.ErrNoPolicy) && org != v.FromHost {
		rec, err = dmarc.LookupWithOptions(org, &dmarc.LookupOptions{LookupTXT: lookup})
		sub = true
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		v.DMARC = authres.ResultNone
		return
	case dmarc.IsTempFail(err):
		v.DMARC, v.dmarcNote = authres.ResultTempError, oneLine(err)
		return
	case err != nil:
		v.DMARC, v.dmarcNote = authres.ResultPermError, oneLine(err)
		return
	}
	aligned := func(d string, mode dmarc.AlignmentMode) bool {
		d = strings.ToLower(d)
		if mode == dmarc.AlignmentStrict {
			return d == v.FromHost
		}
		return orgDomain(d) == org
	}
	_, mfHost, _ := strings.Cut(v.MailFrom, "@")
	if v.SPF == spf.Pass && aligned(mfHost, rec.SPFAlignment) {
		v.DMARC = authres.ResultPass
		return
	}
	for _, d := range v.DKIM {
		if d.Value == authres.ResultPass && aligned(d.Domain, rec.DKIMAlignment) {
			v.DMARC = authres.ResultPass
			return
		}
	}
	v.DMARC = authres.ResultFail
	v.Policy = rec.Policy
	if sub && rec.SubdomainPolicy != "" {
		v.Policy = rec.SubdomainPolicy
	}
	v.dmarcNote = "no aligned SPF or DKIM pass; policy " + string(v.Policy)
}

// orgDomain is the organizational domain (RFC 7489 3.2): the public
// suffix and one label.
func orgDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if o, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return o
	}
	return d
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
