"""Hostile candidate solutions the grading tests share: they try to pass without being right."""

ALWAYS_EQUAL = (
    "class Yes:\n"
    "    def __eq__(self, other):\n        return True\n"
    "    def __ne__(self, other):\n        return False\n"
    "class YesInt(int):\n"
    "    def __eq__(self, other):\n        return True\n"
)
FORGE_RESULT = (  # writes a forged 'ok' result on the result pipe and exits
    "import sys\n"
    "os = sys.modules['os']\n"
    "def {name}(*args):\n"
    '    os.write(3, b\'{{"s": "ok", "o": "True"}}\')\n'
    "    os._exit(0)\n"
)
