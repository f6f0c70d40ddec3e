package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCheckAcceptsTheExample(t *testing.T) {
	code, out, errOut := runCmd(t, nil, "check", "-f", "../../examples/modelgate.yaml")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"OK, 3 gate(s)", "gate credit-risk (sha256:", "check recall-by-group: group recall_sex_(.+)", "promote: alias:champion"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckReadsModelgatePolicy(t *testing.T) {
	code, out, _ := runCmd(t, []string{"MODELGATE_POLICY=../../examples/modelgate.yaml"}, "check")
	if code != exitOK || !strings.Contains(out, "examples/modelgate.yaml: OK") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

var problemLine = regexp.MustCompile(`^\S+\.yaml:\d+:\d+: .+$`)

func TestCheckReportsEveryProblem(t *testing.T) {
	files, _ := filepath.Glob("../../examples/broken/*.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, _ := os.ReadFile(file)
			wants := strings.Count(string(data), "\n# want: ")
			code, out, _ := runCmd(t, nil, "check", "-f", file)
			if code != exitPolicy {
				t.Fatalf("exit %d, want %d", code, exitPolicy)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != wants {
				t.Fatalf("%d problems printed, the file expects %d:\n%s", len(lines), wants, out)
			}
			for _, l := range lines {
				if !problemLine.MatchString(l) || !strings.HasPrefix(l, file+":") {
					t.Errorf("not FILE:LINE:COL: message: %q", l)
				}
			}
		})
	}
}

func TestCheckUsageAndUnreadableFile(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		text string
	}{
		{[]string{"check", "-f", "does-not-exist.yaml"}, exitUsage, "MODELGATE_POLICY"},
		{[]string{"check", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"check", "-x"}, exitUsage, "flag provided but not defined"},
	} {
		code, _, errOut := runCmd(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.text) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %q", tc.args, code, errOut, tc.code, tc.text)
		}
	}
}
