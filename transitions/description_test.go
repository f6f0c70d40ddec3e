package transitions

import (
	"strings"
	"testing"
)

const sectionA = FenceBegin + "\nold report\n" + FenceEnd + "\n"

// state is a report as rules renders it: a state line, then the body.
const state = "⏳ review: accuracy-target"

func TestWithReport(t *testing.T) {
	top := state + "\n" + FenceBegin + "\nnew\n" + FenceEnd + "\n"
	for _, tc := range []struct {
		name, desc, want string
	}{
		{"empty", "", top},
		{"user text follows the section", "Trained on Q3 data.", top + "\nTrained on Q3 data."},
		{"user text with line breaks, kept as they are", "\nTrained.\n\n", top + "\n\nTrained.\n\n"},
		{"a v1 section at the end moves to the top", "Intro\n\n" + sectionA, top + "\nIntro\n\n"},
		{"a v1 section in the middle", "Intro\n\n" + sectionA + "Outro  \r\n", top + "\nIntro\n\nOutro  \r\n"},
		{"two sections: both removed", "a\n" + sectionA + "b\n" + sectionA + "c", top + "\na\nb\nc"},
		{"begin without end is text", "a\n" + FenceBegin + "\nnotes\n", top + "\na\n" + FenceBegin + "\nnotes\n"},
		{"end without begin is text", FenceEnd + "\nnotes", top + "\n" + FenceEnd + "\nnotes"},
		{"fences with CRLF and spaces", "x\r\n  " + FenceBegin + "\r\nold\r\n" + FenceEnd + "  \r\ny", top + "\nx\r\ny"},
		{"a state line before the fence is the section's", "✅ promoted: champion\n" + sectionA + "\nmine", top + "\nmine"},
		{"a state line elsewhere is the user's", "✅ done\n\nmine", top + "\n✅ done\n\nmine"},
		// Removing the section would join the user's stray fences into one: replaced in place.
		{"stray fences around a section", FenceBegin + "\nx\n" + sectionA + "y\n" + FenceEnd + "\n", FenceBegin + "\nx\n" + top + "y\n" + FenceEnd + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := withReport(tc.desc, state+"\nnew")
			if got != tc.want {
				t.Fatalf("withReport(%q)\n got %q\nwant %q", tc.desc, got, tc.want)
			}
			if again := withReport(got, state+"\nnew"); again != got {
				t.Fatalf("not idempotent:\n%q\n%q", got, again)
			}
			if u, w := userText(got), userText(tc.desc); u != w {
				t.Fatalf("user text %q became %q", w, u)
			}
			if c := reportContent(got); c != state+"\nnew" {
				t.Fatalf("content %q", c)
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
// kept byte for byte, exactly one section remains, it opens the description with its
// state line unless the user's stray fences forbid it, and writing the same report again
// changes nothing.
func FuzzWithReport(f *testing.F) {
	for _, s := range []string{"", "plain", "a\n" + sectionA + "b", sectionA + sectionA, FenceBegin, FenceEnd + "\n" + FenceBegin + "\n",
		"x\r\n" + FenceBegin + "\r\n" + FenceEnd, state + "\n" + sectionA + "\n\nuser", FenceBegin + "\nx\n" + sectionA + "y\n" + FenceEnd} {
		f.Add(s, "body", true)
	}
	f.Fuzz(func(t *testing.T, desc, body string, withState bool) {
		if strings.Contains(body, "modelgate:") {
			return // a rendered report never holds fence markers (rules escapes < and >)
		}
		report := body
		if withState {
			report = state + "\n" + body
		}
		out := withReport(desc, report)
		if n := len(sections(out)); n != 1 {
			t.Fatalf("%d sections in %q", n, out)
		}
		if before, after := userText(desc), userText(out); before != after {
			t.Fatalf("user text changed:\n%q\n%q", before, after)
		}
		if withState && len(sections(userText(desc))) == 0 && !strings.HasPrefix(out, state+"\n"+FenceBegin+"\n") {
			t.Fatalf("the section does not open the description: %q", out)
		}
		if again := withReport(out, report); again != out {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
		if !strings.Contains(reportContent(out), strings.TrimRight(body, "\r\n")) {
			t.Fatalf("report lost: %q", out)
		}
	})
}
