"""An independent mail client for the bridge test: Python's standard
smtplib, imaplib, email and mailbox, driving the scenario the Go test
drives with go-imap and go-smtp. It speaks on stdout (SENT, IDLING, OK)
and fails with a message and a non-zero exit."""
import email
import email.policy
import imaplib
import json
import mailbox
import os
import smtplib
import sys
from email.message import EmailMessage


def fail(msg):
    print("FAIL " + msg, flush=True)
    sys.exit(1)


def hostport(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


cfg = json.loads(sys.argv[1])
alice, bob = cfg["alice"], cfg["bob"]

# 1. Alice submits a mail with an attachment over SMTP.
attachment = os.urandom(50_000)
msg = EmailMessage()
msg["From"] = "Alice <%s>" % alice["addr"]
msg["To"] = "Bob <%s>" % bob["addr"]
msg["Subject"] = "from python"
msg["Date"] = email.utils.formatdate()
msg["Message-ID"] = email.utils.make_msgid(domain="flowmail.invalid")
msg.set_content("Hello from smtplib.\n")
msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="blob.bin")
with smtplib.SMTP(*hostport(alice["smtp"])) as s:
    s.login(alice["user"], alice["pw"])
    s.send_message(msg)
print("SENT", flush=True)

# 2. Bob idles on INBOX (imaplib has no IDLE before 3.14: raw protocol).
im = imaplib.IMAP4(*hostport(bob["imap"]))
im.login(bob["user"], bob["pw"])
typ, data = im.select("INBOX")
if typ != "OK":
    fail("select: %r" % data)
before = int(data[0])
tag = im._new_tag()
im.send(tag + b" IDLE\r\n")
line = im.readline()
if not line.startswith(b"+"):
    fail("IDLE: %r" % line)
print("IDLING", flush=True)
while True:
    line = im.readline()
    if not line:
        fail("connection closed while idling")
    if line.startswith(b"* ") and line.rstrip().endswith(b"EXISTS") and int(line.split()[1]) > before:
        break
im.send(b"DONE\r\n")
while True:
    line = im.readline()
    if line.startswith(tag):
        if b" OK" not in line:
            fail("IDLE ended with %r" % line)
        break

# 3. Bob reads the mail; the attachment is byte-identical.
typ, data = im.search(None, "SUBJECT", '"from python"')
nums = data[0].split()
if len(nums) != 1:
    fail("search found %r" % data)
typ, data = im.fetch(nums[0], "(UID RFC822)")
served = data[0][1]
got = email.message_from_bytes(served, policy=email.policy.default)
atts = [p for p in got.iter_attachments()]
if len(atts) != 1 or atts[0].get_content() != attachment:
    fail("the attachment Bob reads differs from the one Alice sent")

# 4. The Maildir, read with Python's mailbox module, holds the same mail
#    with LF line ends.
md = mailbox.Maildir(cfg["bob_maildir"], factory=None, create=False)
found = [md.get_bytes(k) for k in md.keys() if b"from python" in md.get_bytes(k)]
if len(found) != 1:
    fail("Maildir holds %d copies" % len(found))
if b"\r" in found[0]:
    fail("the Maildir file has CR bytes")
if found[0] != served.replace(b"\r\n", b"\n"):
    fail("the Maildir file and the message served over IMAP differ")
mm = md.get_message([k for k in md.keys() if b"from python" in md.get_bytes(k)][0])
if "S" not in mm.get_flags():
    fail("fetching RFC822 did not mark the mail read in the Maildir (flags %r)" % mm.get_flags())

# 5. Flags set over IMAP.
typ, data = im.store(nums[0], "+FLAGS", r"(\Flagged)")
if typ != "OK":
    fail("store: %r" % data)
im.logout()

# 6. Alice's Sent holds the copy.
im = imaplib.IMAP4(*hostport(alice["imap"]))
im.login(alice["user"], alice["pw"])
im.select("Sent")
typ, data = im.search(None, "SUBJECT", '"from python"')
if len(data[0].split()) != 1:
    fail("Alice's Sent: %r" % data)
im.logout()
print("OK", flush=True)
