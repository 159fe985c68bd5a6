package bridge

// childEnv names the directory of a bridge the test binary runs as a
// child process, to be killed.
const childEnv = "FLOWMAIL_BRIDGE_TEST_CHILD"

func runChild(dir string) int { return 2 }
