package transitions

import (
	"strings"
	"testing"
)

const sectionA = FenceBegin + "\nold report\n" + FenceEnd + "\n"

func TestWithReport(t *testing.T) {
	for _, tc := range []struct {
		name, desc, want string
	}{
		{"empty", "", FenceBegin + "\nnew\n" + FenceEnd + "\n"},
		{"user text without a line break", "Trained on Q3 data.", "Trained on Q3 data.\n\n" + FenceBegin + "\nnew\n" + FenceEnd + "\n"},
		{"user text with one line break", "Trained.\n", "Trained.\n\n" + FenceBegin + "\nnew\n" + FenceEnd + "\n"},
		{"replace in place, text around kept", "Intro\n\n" + sectionA + "Outro  \r\n", "Intro\n\n" + FenceBegin + "\nnew\n" + FenceEnd + "\n" + "Outro  \r\n"},
		{"two sections: first replaced, second removed", "a\n" + sectionA + "b\n" + sectionA + "c", "a\n" + FenceBegin + "\nnew\n" + FenceEnd + "\nb\nc"},
		{"begin without end is text", "a\n" + FenceBegin + "\nnotes\n", "a\n" + FenceBegin + "\nnotes\n\n" + FenceBegin + "\nnew\n" + FenceEnd + "\n"},
		{"end without begin is text", FenceEnd + "\nnotes", FenceEnd + "\nnotes\n\n" + FenceBegin + "\nnew\n" + FenceEnd + "\n"},
		{"orphan begin before a section stays", FenceBegin + "\nmine\n" + sectionA, FenceBegin + "\nmine\n" + FenceBegin + "\nnew\n" + FenceEnd + "\n"},
		{"fences with CRLF and spaces", "x\r\n  " + FenceBegin + "\r\nold\r\n" + FenceEnd + "  \r\ny", "x\r\n" + FenceBegin + "\nnew\n" + FenceEnd + "\ny"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := withReport(tc.desc, "new")
			if got != tc.want {
				t.Fatalf("withReport(%q)\n got %q\nwant %q", tc.desc, got, tc.want)
			}
			if again := withReport(got, "new"); again != got {
				t.Fatalf("not idempotent:\n%q\n%q", got, again)
			}
		})
	}
}

func TestReportBudget(t *testing.T) {
	if b := reportBudget(""); b < 4900 {
		t.Fatalf("budget for an empty description: %d", b)
	}
	user := strings.Repeat("é", 4000)
	b := reportBudget(user + "\n\n" + sectionA)
	if got := len([]rune(withReport(user, strings.Repeat("r", b)))); got > MaxDescription {
		t.Fatalf("description of %d characters", got)
	}
	if reportBudget(strings.Repeat("x", MaxDescription)) != 0 {
		t.Fatal("a full description leaves room")
	}
}

// FuzzWithReport: whatever the description, the user's text outside the sections is
// kept, exactly one section remains, and writing the same report again changes nothing.
func FuzzWithReport(f *testing.F) {
	for _, s := range []string{"", "plain", "a\n" + sectionA + "b", sectionA + sectionA, FenceBegin, FenceEnd + "\n" + FenceBegin + "\n", "x\r\n" + FenceBegin + "\r\n" + FenceEnd} {
		f.Add(s, "report")
	}
	f.Fuzz(func(t *testing.T, desc, report string) {
		if strings.Contains(report, "modelgate:") {
			return // a rendered report never holds fence markers (rules escapes < and >)
		}
		out := withReport(desc, report)
		if n := len(sections(out)); n != 1 {
			t.Fatalf("%d sections in %q", n, out)
		}
		before, after := userText(desc), userText(out)
		if len(sections(desc)) > 0 && before != after {
			t.Fatalf("user text changed:\n%q\n%q", before, after)
		}
		if len(sections(desc)) == 0 && !strings.HasPrefix(after, desc) {
			t.Fatalf("user text %q is not a prefix of %q", desc, after)
		}
		if again := withReport(out, report); again != out {
			t.Fatalf("not idempotent")
		}
		if !strings.Contains(reportSection(out), strings.TrimRight(report, "\n")) {
			t.Fatalf("report lost")
		}
	})
}
