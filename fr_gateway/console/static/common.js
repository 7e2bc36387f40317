"use strict";
// What every signed-in page shares: who is signed in, the CSRF token, signing out, small formatting helpers.
const Console = {
  csrf: "",
  async session() {
    const answer = await fetch("/api/session", {credentials: "same-origin"});
    if (answer.status === 401) {
      window.location.assign("/login");
      throw new Error("signed out");
    }
    const session = await answer.json();
    Console.csrf = session.csrf;
    document.getElementById("user").textContent = `${session.user} (${session.role})`;
    document.getElementById("nav-analytics").hidden = session.role !== "supervisor";
    document.getElementById("logout").addEventListener("click", async () => {
      await Console.post("/api/logout", {});
      window.location.assign("/login");
    });
    return session;
  },
  post(path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": Console.csrf},
      body: JSON.stringify(body),
    });
  },
  element(tag, attributes = {}, ...children) {
    const made = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "class") made.className = value;
      else if (name === "text") made.textContent = value;
      else made.setAttribute(name, value);
    }
    made.append(...children);
    return made;
  },
  clock(time) {
    return time ? new Date(time).toLocaleTimeString([], {hour12: false}) : "";
  },
  percent(part, whole) {
    return whole ? `${(100 * part / whole).toFixed(1)}%` : "–";
  },
};
