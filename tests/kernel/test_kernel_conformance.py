"""jupyter_kernel_test's conformance suite, with every sample filled in."""

import unittest

import jupyter_kernel_test as jkt


class TunebookKernelTests(jkt.KernelTests):
    kernel_name = "tunebook"
    language_name = "rhai"
    file_extension = ".rhai"

    code_hello_world = 'print("hello, world")'
    code_stderr = 'debug("something on stderr")'

    completion_samples = [
        {"text": "load_m", "matches": {"load_model"}},
        {"text": "let widths = 3; let widest = 2; wid", "matches": {"widths", "widest"}},
        {"text": 'let d = load_dataset("rotten_tomatoes"); d.sp', "matches": {"split"}},
        # Option-map keys of the call the map belongs to.
        {"text": "fit(model, train, val, #{ epochs: 3, w", "matches": {"warmup", "weight_decay"}},
        {"text": 'load_model("minilm", #{ po', "matches": {"pooling"}},
        {"text": "data.tokenize(model, #{ ", "matches": {"max_len"}},
    ]
    complete_code_samples = ["1 + 1", "let x = 3;", "fn double(x) { x * 2 }", 'print("a")']
    incomplete_code_samples = ["fn double(x) {", "let a = [1, 2,", "if true {"]
    invalid_code_samples = ["let = 5;", "1 + + ;)"]

    code_page_something = 'help("fit")'
    code_generate_error = 'throw "boom"'
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": '"tune" + "book"', "result": '"tunebook"'},
        {"code": "[1, 2, 3].len()", "result": "3"},
    ]
    code_display_data = [
        {"code": 'display(load_dataset("rotten_tomatoes").take(3))', "mime": "text/html"},
        {"code": "plot(tiny_run)", "mime": "image/svg+xml"},
        {"code": "plot(tiny_run)", "mime": "image/png"},
    ]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A tiny run for the chart samples, trained once for the whole class.
        cls.kc.execute_interactive(
            'let m = load_model("minilm", #{ labels: 2 });'
            ' let t = load_dataset("rotten_tomatoes").take(32).tokenize(m, #{ max_len: 16 }).loader(#{ batch: 16 });'
            " let tiny_run = fit(m, t, t, #{ epochs: 1 });",
            timeout=120,
        )
    code_history_pattern = "6 *"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "load_model"
    code_clear_output = "clear_output()"


if __name__ == "__main__":
    unittest.main()
