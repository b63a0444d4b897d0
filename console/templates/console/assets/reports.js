// «Reportes»: the period form's quick ranges («Últimos 7 días»…) fill «Desde» and «Hasta» (local days, ending today
// as the browser sees it) and send the form; a period that ends before it starts is said before it is sent. The
// report itself, its charts (SVG images) and its CSV links are the server's.
"use strict";

(function () {
  if (document.body.dataset.page !== "reports") return;
  const form = document.getElementById("report-form");
  const desde = document.getElementById("report-desde");
  const hasta = document.getElementById("report-hasta");
  if (!form || !desde || !hasta) return;

  function isoDay(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  }

  for (const button of document.querySelectorAll("#report-ranges button[data-days]")) {
    button.addEventListener("click", () => {
      const end = new Date();
      const start = new Date(end.getFullYear(), end.getMonth(), end.getDate() - (Number(button.dataset.days) - 1));
      desde.value = isoDay(start);
      hasta.value = isoDay(end);
      form.requestSubmit();
    });
  }

  form.addEventListener("submit", (event) => {
    if (desde.value && hasta.value && hasta.value < desde.value) {
      event.preventDefault();
      const toast = window.consoleKit && window.consoleKit.toast;
      if (toast) toast("«Hasta» no puede ser anterior a «Desde».", true);
    }
  });
})();
