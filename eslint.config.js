// ESLint for the dashboard's JavaScript (make js-check): the recommended rules, the browser's
// globals, and no unused variables. Formatting is Prettier's (.prettierrc.json), not ESLint's.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "frontend/js/types/", ".venv*/", "build/", "data/"] },
  js.configs.recommended,
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
