"use strict";
// Sign-in: fetch a one-time token (also set as a cookie), send it back in a header with the name and password.
(async function () {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  let token = "";
  async function newToken() {
    token = (await (await fetch("/api/login", {credentials: "same-origin"})).json()).token;
  }
  await newToken();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const answer = await fetch("/api/login", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
      body: JSON.stringify({name: document.getElementById("name").value,
                            password: document.getElementById("password").value}),
    });
    if (answer.ok) {
      window.location.assign("/");
      return;
    }
    const body = await answer.json().catch(() => ({}));
    error.textContent = body.error || `sign-in refused (${answer.status})`;
    document.getElementById("password").value = "";
    if (answer.status === 403) await newToken();
  });
})();
