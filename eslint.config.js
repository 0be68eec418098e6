// ESLint for the dashboard's JavaScript (make js-check): the recommended rules, the browser's
// globals, and no unused variables. Formatting is Prettier's (.prettierrc.json), not ESLint's,
// except max-len: Prettier wraps code at 100 columns but leaves long strings, template literals
// and comments as they are, so ESLint refuses any line over 100 (a URL alone may be longer).
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "frontend/js/types/", ".venv*/", "build/", "data/"] },
  js.configs.recommended,
  { rules: { "max-len": ["error", { code: 100, ignoreUrls: true }] } },
  {
    files: ["frontend/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.browser,
    },
    rules: {
      "no-unused-vars": "error",
    },
  },
  {
    files: ["*.js"],
    languageOptions: { globals: globals.node },
  },
];
