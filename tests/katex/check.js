// Reads a JSON list of TeX strings on stdin; prints a JSON list: null where KaTeX parses it, else the error.
const katex = require("katex");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map(([tex, display]) => {
    try {
      katex.renderToString(tex, { throwOnError: true, displayMode: display, strict: "error" });
      return null;
    } catch (e) {
      return e.message;
    }
  });
  process.stdout.write(JSON.stringify(out));
});
