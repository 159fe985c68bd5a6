package main

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
)

// domainKeyPath is where a domain's key lives in the home directory
// (docs/PROTOCOL.md 10: a signing key file, role 3).
func domainKeyPath(home, domain string) string {
	return filepath.Join(home, "domains", domain+".key")
}

func domainCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:  "domain",
		Usage: "run a domain's names: its key, its DNS record, its certificates",
		Description: "A domain's owner lets people be reached as user@domain in three steps:\n" +
			"  flowmail domain init example.com     (prints the DNS record to publish)\n" +
			"  publish that line in the example.com zone\n" +
			"  flowmail domain sign alice@example.com.request   (completes what the user made\n" +
			"                                       with `flowmail domain request alice@example.com`,\n" +
			"                                       and publishes the certificate in the network)",
		Subcommands: []*cli.Command{domainInitCommand(s), domainCheckCommand(s), domainRequestCommand(s),
			domainSignCommand(s), domainRevokeCommand(s), domainPublishCommand(s)},
	}
}

func domainInitCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a domain's key and print the DNS record that publishes it",
		ArgsUsage: "DOMAIN",
		Description: "init makes the domain's signing key, writes it to <home>/domains/DOMAIN.key\n" +
			"protected by a passphrase, and prints one zone-file line on stdout:\n" +
			"  _flowmail.DOMAIN. IN TXT \"v=fm1; k=…\"\n" +
			"Publish it in the domain's DNS; keep the key file (and a copy offline).",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "no-passphrase", Usage: "store the key unprotected (tests)"},
			&cli.StringFlag{Name: "srv", Usage: "the flowmail `ADDRESS` of the domain's server, if it runs one"},
			&cli.StringFlag{Name: "at", Usage: "`HOST:PORT` where the domain's server listens, if it runs one"},
		}, passphraseFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("domain init takes one argument, the domain: flowmail domain init example.com")
			}
			domain, err := naming.NormaliseDomain(c.Args().First())
			if err != nil {
				return fmt.Errorf("%w (a domain such as example.com; non-ASCII names are written as typed and stored in xn-- form)", err)
			}
			rec := naming.Record{At: c.String("at")}
			if srv := c.String("srv"); srv != "" {
				if rec.Server, err = identity.ParseAddress(srv); err != nil {
					return fmt.Errorf("--srv: %w", err)
				}
			}
			path := domainKeyPath(c.String("home"), domain)
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists: %s has a key in this home", path, domain)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			rec.Keys = []naming.Key{naming.Key(pub)}
			if err := rec.Check(); err != nil {
				return fmt.Errorf("the record would not be valid (check --srv and --at): %w", err)
			}
			opt := identity.KeyFileOptions{NoPassphrase: c.Bool("no-passphrase")}
			if !opt.NoPassphrase {
				if opt.Passphrase, err = newPassphrase(c, s); err != nil {
					return err
				}
			}
			if err := identity.WriteSigningKeyFile(path, priv, opt); err != nil {
				return err
			}
			fmt.Fprintln(s.out, rec.ZoneLine(domain))
			fmt.Fprintf(s.err, "Created the key of %s in %s (keep a copy offline).\nPublish the line above in the DNS zone of %s.\n", domain, path, domain)
			return nil
		},
	}
}

// dnsFlags are the flags of every command that looks names up in DNS.
func dnsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "dns-server",
			Usage:   "ask this DNS server (`IP[:PORT]`) instead of those of /etc/resolv.conf",
			EnvVars: []string{"FLOWMAIL_DNS_SERVER"},
		},
	}
}

// newDNS builds the DNS client the flags ask for.
func newDNS(c *cli.Context) (*naming.DNS, error) {
	d := &naming.DNS{}
	if v := c.String("dns-server"); v != "" {
		server, err := naming.ParseServer(v)
		if err != nil {
			return nil, fmt.Errorf("--dns-server / FLOWMAIL_DNS_SERVER: %w", err)
		}
		d.Servers = []string{server}
	}
	return d, nil
}

func domainCheckCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "look up a domain's flowmail record in DNS and say what clients will see",
		ArgsUsage: "DOMAIN",
		Description: "check asks DNS for _flowmail.DOMAIN as every client does, prints the record\n" +
			"and whether the answer was DNSSEC-validated, and, when this home holds the\n" +
			"domain's key, whether the record lists it.",
		Flags: dnsFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("domain check takes one argument, the domain: flowmail domain check example.com")
			}
			d, err := newDNS(c)
			if err != nil {
				return err
			}
			dom, err := d.LookupDomain(c.Context, c.Args().First())
			switch {
			case errors.Is(err, naming.ErrNoRecord):
				return fmt.Errorf("%w\npublish the line `flowmail domain init` printed in the domain's zone (and wait for the DNS to pick it up)", err)
			case errors.Is(err, naming.ErrConflict):
				return fmt.Errorf("%w\nkeep exactly one TXT record starting v=fm1 at that name", err)
			case errors.Is(err, naming.ErrTimeout):
				return fmt.Errorf("%w\nis the DNS server reachable? Try another with --dns-server IP:PORT", err)
			case err != nil:
				return err
			}
			fmt.Fprintf(s.out, "%s\n", dom.Text())
			validated := "no"
			if dom.Validated {
				validated = "yes"
			}
			fmt.Fprintf(s.err, "domain:          %s\nanswered by:     %s\nDNSSEC-validated: %s\n", dom.Name, dom.AnsweredBy, validated)
			for i, k := range dom.Keys {
				fmt.Fprintf(s.err, "key %d:           %s\n", i+1, naming.FormatKey(k))
			}
			if !dom.Server.IsZero() {
				fmt.Fprintf(s.err, "server:          %s\n", identity.FormatAddress(dom.Server))
			}
			if dom.At != "" {
				fmt.Fprintf(s.err, "reachable at:    %s\n", dom.At)
			}
			path := domainKeyPath(c.String("home"), dom.Name)
			if _, err := os.Stat(path); err == nil {
				k, err := identity.ReadSigningKeyFile(path, func() ([]byte, error) { return readPassphrase(c, s, "Passphrase of the domain key: ") })
				if err != nil {
					return err
				}
				if !dom.Lists(naming.Key(k.Public().(ed25519.PublicKey))) {
					return fmt.Errorf("the record does not list this home's key of %s (%s): certificates it signs will not resolve", dom.Name, path)
				}
				fmt.Fprintf(s.err, "this home's key: listed\n")
			}
			return nil
		},
	}
}

// certPath is where a domain's owner keeps the newest certificate it
// issued for a name: it is what `domain revoke` and `domain publish`
// start from.
func certPath(home, name string) string {
	local, domain, _ := strings.Cut(name, "@")
	return filepath.Join(home, "domains", domain, local+".cert")
}

// readDomainKey reads the key file of domain in home.
func readDomainKey(c *cli.Context, s *streams, domain string) (ed25519.PrivateKey, error) {
	path := domainKeyPath(c.String("home"), domain)
	k, err := identity.ReadSigningKeyFile(path, func() ([]byte, error) { return readPassphrase(c, s, "Passphrase of the key of "+domain+": ") })
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: this home has no key of %s (run `flowmail domain init %s` where the domain's key lives, or pass that --home)", err, domain, domain)
	}
	return k, err
}

// readCertFile reads and verifies a certificate file.
func readCertFile(path string) (*record.Record, error) {
	b, err := readSmallFile(path, int64(block.MaxRecordSize))
	if err != nil {
		return nil, err
	}
	r, err := record.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Kind != record.KindName {
		return nil, fmt.Errorf("%s: %w: a %v, not a name certificate", path, record.ErrKind, r.Kind)
	}
	return r, nil
}

// recordClient joins the network as a client whose DHT stores records;
// the caller closes the node.
func recordClient(c *cli.Context, s *streams) (*node.Node, recordDHT, error) {
	n, err := startClient(c.Context, c, s)
	if err != nil {
		return nil, nil, err
	}
	rd, err := recordsOf(n)
	if err != nil {
		n.Close()
		return nil, nil, err
	}
	return n, rd, nil
}

// publishCert stores a certificate at its slot in the network for as
// long as it is valid, at most a block's lifetime (republished by
// `domain publish`).
func publishCert(c *cli.Context, s *streams, cert *record.Record) error {
	n, rd, err := recordClient(c, s)
	if err != nil {
		return err
	}
	defer n.Close()
	lifetime := naming.RepublishLifetime(cert.Name, time.Now())
	if lifetime == 0 {
		return fmt.Errorf("%w: the certificate of %s has ended", record.ErrExpired, cert.Name.Name)
	}
	stored, err := rd.PutRecord(c.Context, cert.Bytes(), lifetime)
	if err != nil {
		return fmt.Errorf("publishing the certificate of %s: %w", cert.Name.Name, err)
	}
	fmt.Fprintf(s.err, "published the certificate of %s (seq %d) at %d nodes, for %v\n", cert.Name.Name, cert.Name.Version.Seq, stored, lifetime)
	return nil
}

func domainRequestCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "request",
		Usage:     "ask a domain for a name: your co-signed half of its certificate",
		ArgsUsage: "NAME@DOMAIN",
		Description: "request signs, with your identity, a certificate binding NAME@DOMAIN to your\n" +
			"address, and writes it to a file (default NAME@DOMAIN.request) that you give\n" +
			"the domain's owner, who completes it with `flowmail domain sign FILE`. The\n" +
			"domain's key comes from its DNS record, or from --domain-key when it lists\n" +
			"several. To renew, pass the current certificate with --after.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "domain-key", Usage: "the domain's `KEY` (as its DNS record lists it) when it lists several"},
			&cli.StringFlag{Name: "out", Usage: "write the request to `FILE`"},
			&cli.StringFlag{Name: "after", Usage: "the current certificate `FILE` of the name, to renew it"},
			&cli.DurationFlag{Name: "validity", Usage: "how long the certificate lasts", Value: naming.DefaultValidity},
		}, dnsFlags()...), passphraseFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("domain request takes one argument, the name: flowmail domain request alice@example.com")
			}
			name, err := record.Normalise(c.Args().First())
			if err != nil {
				return nameAdvice(err, c.Args().First())
			}
			_, domain, _ := strings.Cut(name, "@")
			var key naming.Key
			if k := c.String("domain-key"); k != "" {
				if key, err = naming.ParseKey(k); err != nil {
					return fmt.Errorf("--domain-key: %w", err)
				}
			} else {
				d, err := newDNS(c)
				if err != nil {
					return err
				}
				dom, err := d.LookupDomain(c.Context, domain)
				if err != nil {
					return nameAdvice(err, name)
				}
				if len(dom.Keys) != 1 {
					return fmt.Errorf("%s lists %d keys (a rollover): pick the one to be certified under with --domain-key", domain, len(dom.Keys))
				}
				key = dom.Keys[0]
			}
			var held *record.Record
			if f := c.String("after"); f != "" {
				if held, err = readCertFile(f); err != nil {
					return fmt.Errorf("--after: %w", err)
				}
				if held.Name.Name != name || held.Name.DomainKey != key {
					return fmt.Errorf("--after: %s is the certificate of %s under key %s, not of %s under %s", f, held.Name.Name, naming.FormatKey(held.Name.DomainKey), name, naming.FormatKey(key))
				}
			}
			v, err := naming.NextVersion(held, time.Now(), c.Duration("validity"))
			if err != nil {
				return err
			}
			me, err := loadIdentity(c, s)
			if err != nil {
				return err
			}
			req, err := naming.NewRequest(name, me.ID(), key, me, v)
			if err != nil {
				return err
			}
			out := cmp.Or(c.String("out"), name+".request")
			if err := atomicfile.Write(out, req.Encode(), 0o644); err != nil {
				return err
			}
			fmt.Fprintln(s.out, out)
			fmt.Fprintf(s.err, "Give %s to the owner of %s: `flowmail domain sign %s` completes and publishes it.\n", out, domain, out)
			return nil
		},
	}
}

func domainSignCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "sign",
		Usage:     "issue a name's certificate with the domain's key and publish it",
		ArgsUsage: "REQUEST_FILE | USER[@DOMAIN] ADDRESS",
		Description: "sign REQUEST_FILE checks the user's signature in a request (`flowmail domain\n" +
			"request`), signs it with the key of the request's domain in this home, keeps the\n" +
			"certificate in <home>/domains/DOMAIN/USER.cert (printed on stdout) and stores it\n" +
			"in the network at its slot. --no-publish only writes the file.\n\n" +
			"sign USER[@DOMAIN] ADDRESS does both halves in one step when the user's identity\n" +
			"is on this machine: in this home, or in --user-home DIR. ADDRESS must be that\n" +
			"identity's (its co-signature is what stops a domain from binding a name to someone\n" +
			"else's key). DOMAIN may be left out when this home holds one domain's key. A name\n" +
			"this home certified before gets the next version (a renewal).",
		Flags: append(certFlags(),
			&cli.StringFlag{Name: "user-home", Usage: "the home `DIR` of the user's identity, for USER ADDRESS (default: --home)"},
			&cli.DurationFlag{Name: "validity", Usage: "how long the certificate lasts, for USER ADDRESS", Value: naming.DefaultValidity},
		),
		Action: func(c *cli.Context) error {
			switch c.NArg() {
			case 1:
				return signRequest(c, s, c.Args().First())
			case 2:
				return signDirect(c, s, c.Args().Get(0), c.Args().Get(1))
			}
			return errors.New("domain sign takes a request file (from `flowmail domain request`), or USER@DOMAIN ADDRESS when the user's identity is on this machine")
		},
	}
}

// signRequest completes the request in file with the domain's key.
func signRequest(c *cli.Context, s *streams, file string) error {
	b, err := readSmallFile(file, int64(naming.MaxRequestSize))
	if err != nil {
		return err
	}
	req, err := naming.DecodeRequest(b)
	if err != nil {
		return fmt.Errorf("%s: %w (ask the user for a new one)", file, err)
	}
	_, domain, _ := strings.Cut(req.Cert.Name, "@")
	k, err := readDomainKey(c, s, domain)
	if err != nil {
		return err
	}
	return completeAndKeep(c, s, req, k)
}

// signDirect is sign USER[@DOMAIN] ADDRESS: the request made with the
// user's identity (--user-home, else this home) and completed with the
// domain's key, in one step; the next version of a name this home
// certified before.
func signDirect(c *cli.Context, s *streams, user, address string) error {
	home := c.String("home")
	if !strings.Contains(user, "@") {
		domains, err := filepath.Glob(domainKeyPath(home, "*"))
		if err != nil {
			return err
		}
		if len(domains) != 1 {
			return fmt.Errorf("%q names no domain, and this home holds %d domain keys: write USER@DOMAIN", user, len(domains))
		}
		user += "@" + strings.TrimSuffix(filepath.Base(domains[0]), ".key")
	}
	name, err := record.Normalise(user)
	if err != nil {
		return nameAdvice(err, user)
	}
	addr, _, err := identity.ParseMailbox(address)
	if err != nil {
		return err
	}
	_, domain, _ := strings.Cut(name, "@")
	k, err := readDomainKey(c, s, domain)
	if err != nil {
		return err
	}
	userHome := cmp.Or(c.String("user-home"), home)
	id, err := identity.ReadKeyFile(filepath.Join(userHome, keyFileName), func() ([]byte, error) {
		return readPassphrase(c, s, "Passphrase of the identity in "+userHome+": ")
	})
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s holds no identity: give the user's home with --user-home, or have the user run `flowmail domain request %s` and sign that file", err, userHome, name)
	}
	if err != nil {
		return err
	}
	if id.ID() != addr {
		return fmt.Errorf("%s is not the identity in %s (%s): a certificate needs its address's own co-signature; have the user run `flowmail domain request %s` and sign that file",
			identity.FormatAddress(addr), userHome, id.Address(), name)
	}
	var held *record.Record
	if h, err := readCertFile(certPath(home, name)); err == nil {
		held = h
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	v, err := naming.NextVersion(held, time.Now(), c.Duration("validity"))
	if err != nil {
		return err
	}
	req, err := naming.NewRequest(name, addr, naming.Key(k.Public().(ed25519.PublicKey)), id, v)
	if err != nil {
		return err
	}
	return completeAndKeep(c, s, req, k)
}

// completeAndKeep signs req with the domain's key k, keeps the
// certificate and publishes it (keepAndPublish).
func completeAndKeep(c *cli.Context, s *streams, req *naming.Request, k ed25519.PrivateKey) error {
	cert, err := req.Complete(k)
	if err != nil {
		return err
	}
	return keepAndPublish(c, s, cert)
}

// certFlags are the flags of the commands that sign a certificate with
// the domain's key and publish it.
func certFlags() []cli.Flag {
	return append(append([]cli.Flag{
		&cli.BoolFlag{Name: "no-publish", Usage: "write the certificate file, do not store it in the network"},
	}, networkFlags()...), passphraseFlags()...)
}

// keepAndPublish writes cert where the domain's owner keeps it and, unless
// --no-publish, stores it in the network.
func keepAndPublish(c *cli.Context, s *streams, cert *record.Record) error {
	path := certPath(c.String("home"), cert.Name.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(path, cert.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(s.out, path)
	if c.Bool("no-publish") {
		return nil
	}
	if err := publishCert(c, s, cert); err != nil {
		return fmt.Errorf("%w\nthe certificate is kept in %s: publish it later with `flowmail domain publish %s`", nameAdvice(err, cert.Name.Name), path, cert.Name.Name)
	}
	return nil
}

func domainRevokeCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "end a name's binding (for good under this domain key)",
		ArgsUsage: "NAME@DOMAIN",
		Description: "revoke signs the terminal version of the name's certificate kept in this home\n" +
			"and publishes it: resolvers refuse the name from then on. The name can be\n" +
			"given out again only under a new domain key (docs/PROTOCOL.md 19.6).",
		Flags: certFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("domain revoke takes one argument, the name: flowmail domain revoke alice@example.com")
			}
			name, err := record.Normalise(c.Args().First())
			if err != nil {
				return nameAdvice(err, c.Args().First())
			}
			held, err := readCertFile(certPath(c.String("home"), name))
			if err != nil {
				return fmt.Errorf("%w: this home issued no certificate for %s", err, name)
			}
			_, domain, _ := strings.Cut(name, "@")
			k, err := readDomainKey(c, s, domain)
			if err != nil {
				return err
			}
			rev, err := naming.Revoke(held, k)
			if err != nil {
				return err
			}
			return keepAndPublish(c, s, rev)
		},
	}
}

func domainPublishCommand(s *streams) *cli.Command {
	return &cli.Command{
		Name:      "publish",
		Usage:     "store a name's newest certificate in the network again (keeps it alive)",
		ArgsUsage: "NAME@DOMAIN | --all",
		Description: "A running `flowmail node` with this --home does this by itself for every certificate\n" +
			"kept here (docs/PROTOCOL.md 19.6). Without one, run `domain publish --all` from cron,\n" +
			"weekly: the network forgets a record a month after it was last stored.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "every certificate kept in this home that has not ended"},
		}, networkFlags()...),
		Action: func(c *cli.Context) error {
			if c.Bool("all") {
				if c.NArg() != 0 {
					return errors.New("domain publish takes a name or --all, not both")
				}
				return publishAllCerts(c, s)
			}
			if c.NArg() != 1 {
				return errors.New("domain publish takes one argument, the name: flowmail domain publish alice@example.com (or --all)")
			}
			name, err := record.Normalise(c.Args().First())
			if err != nil {
				return nameAdvice(err, c.Args().First())
			}
			cert, err := readCertFile(certPath(c.String("home"), name))
			if err != nil {
				return err
			}
			return nameAdvice(publishCert(c, s, cert), name)
		},
	}
}

// publishAllCerts is `domain publish --all`: every kept certificate that
// has not ended, stored again for the time it has left (at most a block's
// lifetime), in rounds of naming.CertRepublishPerRound.
func publishAllCerts(c *cli.Context, s *streams) error {
	log, err := newLogger(c, s.err)
	if err != nil {
		return err
	}
	home := c.String("home")
	if !hasDomains(home) {
		return errNoKeptCerts
	}
	n, rd, err := recordClient(c, s)
	if err != nil {
		return err
	}
	defer n.Close()
	r := &naming.Republisher{Certs: func() ([]*record.Record, error) { return keptCerts(home, log) }, DHT: rd, Log: log}
	var stored, failed []string
	for first := true; ; first = false {
		round, err := r.RunRound(c.Context)
		stored, failed = append(stored, round.Stored...), append(failed, round.Failed...)
		if err != nil {
			return err
		}
		for _, name := range round.Ending {
			if !first {
				break
			}
			fmt.Fprintf(s.err, "note: the certificate of %s ends within %d days: ask its user for a renewal (flowmail domain request --after)\n", name, int(naming.CertRenewalNotice.Hours()/24))
		}
		if round.Waiting == 0 || len(round.Stored) == 0 {
			break
		}
	}
	fmt.Fprintf(s.err, "published %d certificates again\n", len(stored))
	if len(failed) > 0 {
		return fmt.Errorf("%d certificates could not be stored (%s): try again later", len(failed), strings.Join(failed, ", "))
	}
	return nil
}
