from smswatch.forward.worker import main

main()
