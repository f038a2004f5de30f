package checktest

import (
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
)

// TestSingleMechanism: servers offering only XOAUTH2 (as Microsoft's do) or only OAUTHBEARER
// pass on every protocol with no sasl setting: mailkey test picks what the server offers and
// says which it used. Then Postfix's submission service, with SMTP AUTH switched off for one
// mailbox as Exchange Online does, answers 535 5.7.139 and the checklist gives its fix.
func TestSingleMechanism(t *testing.T) {
	s, ctx, m := startCheck(t, e2e.WithSingleMechanismServers())

	for _, c := range []struct {
		mech string
		l    *e2e.Listeners
	}{{"XOAUTH2", s.XOAUTH2Only}, {"OAUTHBEARER", s.OAuthBearerOnly}} {
		t.Run(c.mech, func(t *testing.T) {
			m := m.on(t)
			name := strings.ToLower(c.mech)
			m.add(ctx, s, name, e2e.Alice, "--imap", c.l.IMAP, "--pop3", c.l.POP3, "--smtp", c.l.Submission, "--ca-file", s.CAFile)
			m.login(ctx, s, name, e2e.Alice, e2e.AlicePassword)
			rep, r := m.test(ctx, name)
			if r.Code != 0 || !rep.Passed || len(rep.Results) != 3 {
				t.Fatalf("%s-only servers: %s", c.mech, r)
			}
			r = m.Must(ctx, "", "test", name)
			if n := strings.Count(r.Stdout, "using "+c.mech); n != 3 {
				t.Errorf("%s used for %d protocols, want 3:\n%s", c.mech, n, r.Stdout)
			}
		})
	}

	t.Run("smtp auth disabled", func(t *testing.T) {
		m := m.on(t)
		m.add(ctx, s, "disabled", e2e.SMTPAuthDisabled, "--smtp", s.PostfixSubmission, "--imap", s.IMAP, "--ca-file", s.CAFile)
		m.login(ctx, s, "disabled", e2e.SMTPAuthDisabled, e2e.CarolPassword)
		rep, r := m.test(ctx, "disabled")
		if r.Code != 1 || rep.Passed {
			t.Fatalf("SMTP AUTH disabled: exit %d, want 1: %s", r.Code, r)
		}
		wantDiagnosis(t, rep, r, "smtp", "authenticate", "ms-smtp-auth-disabled")
		if st := rep.diagnosed("smtp"); !strings.Contains(st.Diagnosis.Fix, "Set-CASMailbox -Identity "+e2e.SMTPAuthDisabled+" -SmtpClientAuthenticationDisabled $false") {
			t.Errorf("the fix does not name the mailbox's setting: %s", st.Diagnosis.Fix)
		}
		if d := rep.diagnosed("imap"); d != nil {
			t.Errorf("IMAP of the same mailbox failed too: %+v", d)
		}
		// Another mailbox logs in through the same Postfix service.
		m.add(ctx, s, "postfix", e2e.Alice, "--smtp", s.PostfixSubmission, "--ca-file", s.CAFile)
		m.login(ctx, s, "postfix", e2e.Alice, e2e.AlicePassword)
		if rep, r := m.test(ctx, "postfix"); r.Code != 0 || !rep.Passed {
			t.Errorf("Postfix submission for %s: %s", e2e.Alice, r)
		}
	})
}
